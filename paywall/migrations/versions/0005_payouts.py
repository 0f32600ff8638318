"""payouts: money paid out to creators, as balanced ledger transactions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('payouts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('recorded_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name='ck_payouts_amount'),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['recorded_by'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payouts_creator_id'), ['creator_id'], unique=False)
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payout_id', sa.String(length=32), nullable=True))
        batch_op.alter_column('order_id', existing_type=sa.String(length=32), nullable=True)
        batch_op.create_index(batch_op.f('ix_ledger_entries_payout_id'), ['payout_id'], unique=False)
        batch_op.create_foreign_key('fk_ledger_entries_payout_id', 'payouts', ['payout_id'], ['id'])
        batch_op.create_check_constraint('ck_ledger_entries_source', '(order_id is null) <> (payout_id is null)')


def downgrade() -> None:
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_constraint('ck_ledger_entries_source', type_='check')
        batch_op.drop_constraint('fk_ledger_entries_payout_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_ledger_entries_payout_id'))
        batch_op.alter_column('order_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column('payout_id')
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payouts_creator_id'))
    op.drop_table('payouts')
