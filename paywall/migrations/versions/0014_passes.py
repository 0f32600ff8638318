"""passes: creator subscriptions (plans), course series, pass charges in the ledger; coupons can be
disabled; a minimum price for a room's paid questions

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0014'
down_revision: Union[str, Sequence[str], None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: each ledger leg belongs to exactly one order, payout or pass charge (paywall.models.LEDGER_SOURCE)
_SOURCE = ("(case when order_id is null then 0 else 1 end) + (case when payout_id is null then 0 else 1 end)"
           " + (case when charge_id is null then 0 else 1 end) = 1")


def upgrade() -> None:
    op.create_table('series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('include_later', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('price > 0', name='ck_series_price'),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_creator_id'), ['creator_id'], unique=False)

    op.create_table('subscription_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=False),
    sa.Column('interval', sa.String(length=5), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("interval in ('month','year')", name='ck_plans_interval'),
    sa.CheckConstraint('price > 0', name='ck_plans_price'),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('creator_id', 'interval', name='uq_plans_interval')
    )
    op.create_table('passes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('series_id', sa.Integer(), nullable=True),
    sa.Column('interval', sa.String(length=5), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('current_period_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('provider_ref', sa.String(length=255), nullable=True),
    sa.Column('subscription_ref', sa.String(length=255), nullable=True),
    sa.Column('checkout_url', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind in ('subscription','series')", name='ck_passes_kind'),
    sa.CheckConstraint("status in ('pending','active','past_due','canceled','refunded','declined')", name='ck_passes_status'),
    sa.CheckConstraint('amount > 0', name='ck_passes_amount'),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['plan_id'], ['subscription_plans.id'], ),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'idempotency_key', name='uq_passes_idempotency')
    )
    with op.batch_alter_table('passes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_passes_creator_id'), ['creator_id'], unique=False)
        batch_op.create_index('ix_passes_holder', ['user_id', 'creator_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_passes_provider_ref'), ['provider_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_passes_subscription_ref'), ['subscription_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_passes_user_id'), ['user_id'], unique=False)

    op.create_table('series_rooms',
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('series_id', 'room_id')
    )
    with op.batch_alter_table('series_rooms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_rooms_room_id'), ['room_id'], unique=False)

    op.create_table('pass_charges',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('pass_id', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('payment_ref', sa.String(length=255), nullable=False),
    sa.Column('refund_ref', sa.String(length=255), nullable=True),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status in ('paid','refunded')", name='ck_pass_charges_status'),
    sa.CheckConstraint('amount >= 0', name='ck_pass_charges_amount'),
    sa.ForeignKeyConstraint(['pass_id'], ['passes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider', 'payment_ref', name='uq_pass_charges_payment')
    )
    with op.batch_alter_table('pass_charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pass_charges_pass_id'), ['pass_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pass_charges_refund_ref'), ['refund_ref'], unique=False)

    op.add_column('coupons', sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False))
    # plain ADD COLUMN, never a batch copy of rooms: that would drop the FTS triggers of 0007
    op.add_column('rooms', sa.Column('question_min_price', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('charge_id', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_ledger_entries_charge_id'), ['charge_id'], unique=False)
        batch_op.create_foreign_key('fk_ledger_entries_charge_id', 'pass_charges', ['charge_id'], ['id'])
        batch_op.drop_constraint('ck_ledger_entries_source', type_='check')
        batch_op.create_check_constraint('ck_ledger_entries_source', _SOURCE)


def downgrade() -> None:
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_constraint('ck_ledger_entries_source', type_='check')
        batch_op.drop_constraint('fk_ledger_entries_charge_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_ledger_entries_charge_id'))
        batch_op.drop_column('charge_id')
        batch_op.create_check_constraint('ck_ledger_entries_source', '(order_id is null) <> (payout_id is null)')
    op.drop_column('rooms', 'question_min_price')
    op.drop_column('coupons', 'active')
    with op.batch_alter_table('pass_charges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pass_charges_refund_ref'))
        batch_op.drop_index(batch_op.f('ix_pass_charges_pass_id'))

    op.drop_table('pass_charges')
    with op.batch_alter_table('series_rooms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_rooms_room_id'))

    op.drop_table('series_rooms')
    with op.batch_alter_table('passes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_passes_user_id'))
        batch_op.drop_index(batch_op.f('ix_passes_subscription_ref'))
        batch_op.drop_index(batch_op.f('ix_passes_provider_ref'))
        batch_op.drop_index('ix_passes_holder')
        batch_op.drop_index(batch_op.f('ix_passes_creator_id'))

    op.drop_table('passes')
    op.drop_table('subscription_plans')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_creator_id'))

    op.drop_table('series')

