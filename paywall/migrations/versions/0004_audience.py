"""audience log: broadcasts and concurrent-viewer samples (creator dashboard)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('broadcasts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('peak_viewers', sa.Integer(), nullable=True),
    sa.Column('avg_viewers', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_broadcasts_room_id'), ['room_id'], unique=False)

    op.create_table('audience_samples',
    sa.Column('broadcast_id', sa.String(length=32), nullable=False),
    sa.Column('t_ms', sa.BigInteger(), nullable=False),
    sa.Column('viewers', sa.Integer(), nullable=False),
    sa.CheckConstraint('viewers >= 0', name='ck_audience_samples_viewers'),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('broadcast_id', 't_ms')
    )


def downgrade() -> None:
    op.drop_table('audience_samples')
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_broadcasts_room_id'))
    op.drop_table('broadcasts')
