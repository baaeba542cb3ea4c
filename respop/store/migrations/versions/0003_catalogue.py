"""catalogue: the specs a run used (names, French labels, versions, sources)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('catalogue',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('disease', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False, comment='disease, source, subtype, branch, feature, strata_source or stratum'),
    sa.Column('name', sa.String(length=200), nullable=False, comment="identifier (the disease's own row: its id)"),
    sa.Column('rank', sa.Integer(), nullable=False, comment='order in the spec (strata: 1 = least severe)'),
    sa.Column('label', sa.Text(), nullable=False, comment='French name or label (a source: its reference)'),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('protocol', sa.Text(), nullable=True, comment='strata: care protocol (French)'),
    sa.Column('condition', sa.Text(), nullable=True, comment='strata: the condition on the features'),
    sa.Column('codes', sa.Text(), nullable=True, comment='code features: ICD-10 prefixes'),
    sa.Column('version', sa.String(length=40), nullable=True, comment="the disease's own row: the algorithm's version"),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment='the specs the run used (respop.spec.catalogue): text only, no count'
    )
    with op.batch_alter_table('catalogue', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalogue_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('catalogue', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_catalogue_run_id'))
    op.drop_table('catalogue')
