"""runs.disclosure: what the disclosure audit of a run found

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('disclosure', sa.JSON(), nullable=True,
                                   comment='the disclosure rules and, per table, masked cells, audit programs, cells left narrow or unaudited'))


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_column('disclosure')
