"""trust: verified creators, room listing (review queue, takedown), reports, the audit log

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_LISTING = "listing in ('listed','pending','rejected','taken_down')"


def upgrade() -> None:
    # plain ADD COLUMN, never a batch copy of rooms: that would drop the FTS triggers of 0007
    op.add_column('users', sa.Column('verified', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('rooms', sa.Column('listing', sa.String(length=12), server_default='listed', nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        op.create_check_constraint('ck_rooms_listing', 'rooms', _LISTING)
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=100), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reporter_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_by', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind in ('room','replay','danmaku','user')", name='ck_reports_kind'),
    sa.CheckConstraint("status in ('open','resolved')", name='ck_reports_status'),
    sa.ForeignKeyConstraint(['reporter_id'], ['users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resolved_by'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reporter_id', 'kind', 'target', name='uq_reports_once')
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index('ix_reports_status', ['status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_status')
    op.drop_table('reports')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))
    op.drop_table('audit_log')
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint('ck_rooms_listing', 'rooms', type_='check')
    op.drop_column('rooms', 'listing')
    op.drop_column('users', 'verified')
