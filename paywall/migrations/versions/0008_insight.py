"""insight: behaviour events (append-only, batched), visitor ids joined to accounts, room costs, coupon offers

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('visitor_links',
    sa.Column('visitor', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('visitor')
    )
    with op.batch_alter_table('visitor_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visitor_links_user_id'), ['user_id'], unique=False)

    op.create_table('behaviour_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('visitor', sa.String(length=32), nullable=True),
    sa.Column('room_id', sa.Integer(), nullable=True),
    sa.Column('broadcast', sa.String(length=32), nullable=True),
    sa.Column('t_ms', sa.BigInteger(), nullable=True),
    sa.Column('value', sa.BigInteger(), nullable=True),
    sa.Column('data', sa.Text(), nullable=False),
    sa.CheckConstraint("kind in ('page_visit','preview_start','preview_end','checkout_started','checkout_completed','checkout_abandoned','live_join','live_leave','replay_progress','danmaku','like','question','tip')", name='ck_behaviour_events_kind'),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('behaviour_events', schema=None) as batch_op:
        batch_op.create_index('ix_behaviour_events_at', ['at'], unique=False)
        batch_op.create_index('ix_behaviour_events_room', ['room_id', 'kind', 'at'], unique=False)
        batch_op.create_index('ix_behaviour_events_user', ['user_id', 'kind', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_behaviour_events_visitor'), ['visitor'], unique=False)

    op.create_table('room_costs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("category in ('production','promotion','other')", name='ck_room_costs_category'),
    sa.CheckConstraint('amount > 0', name='ck_room_costs_amount'),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('room_costs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_costs_room_id'), ['room_id'], unique=False)

    op.create_table('coupon_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('percent', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('coupon_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coupon_offers_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('coupon_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coupon_offers_user_id'))

    op.drop_table('coupon_offers')
    with op.batch_alter_table('room_costs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_costs_room_id'))

    op.drop_table('room_costs')
    with op.batch_alter_table('behaviour_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_behaviour_events_visitor'))
        batch_op.drop_index('ix_behaviour_events_user')
        batch_op.drop_index('ix_behaviour_events_room')
        batch_op.drop_index('ix_behaviour_events_at')

    op.drop_table('behaviour_events')
    with op.batch_alter_table('visitor_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visitor_links_user_id'))

    op.drop_table('visitor_links')
