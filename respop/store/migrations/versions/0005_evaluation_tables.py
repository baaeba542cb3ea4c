"""The evaluation of the experiment (issue 20): design, territories, outcomes, effects, event study,
trajectories, weights, power and outcomes by deprivation quintile

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('evaluation_deprivation',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('disease', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=60), nullable=False),
    sa.Column('quintile', sa.Integer(), nullable=True, comment='1 = least deprived ... 5; null: the whole area'),
    sa.Column('events', sa.Integer(), nullable=True, comment='masked below 11'),
    sa.Column('denominator', sa.Float(), nullable=True, comment='inhabitants, or cases (per-case outcomes: masked below 11)'),
    sa.Column('value', sa.Float(), nullable=True, comment='standardised value; null where its events or cases are masked'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment='outcomes by deprivation quintile: counts disclosure-controlled, quintiles summing to the area'
    )
    with op.batch_alter_table('evaluation_deprivation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_deprivation_run_id'), ['run_id'], unique=False)

    op.create_table('evaluation_design',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('first_year', sa.Integer(), nullable=True, comment="first year of the evaluation's panel"),
    sa.Column('last_year', sa.Integer(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True, comment='level of the confidence intervals'),
    sa.Column('min_pre_years', sa.Integer(), nullable=True, comment="years of data required before each pilot's start"),
    sa.Column('exclude_neighbours', sa.Boolean(), nullable=True, comment='territories adjacent to a pilot left out of the donors'),
    sa.Column('deprivation', sa.Boolean(), nullable=True, comment='a deprivation index was given (evaluation_deprivation)'),
    sa.Column('detail', sa.Text(), nullable=True, comment='design.json of the evaluation step as JSON text (ids, years, settings; no count)'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment="the evaluation's design (one row per run that has one): no count"
    )
    with op.batch_alter_table('evaluation_design', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_design_run_id'), ['run_id'], unique=False)

    op.create_table('evaluation_effects',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False, comment='did or synthetic_control'),
    sa.Column('disease', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=60), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=True, comment='the pilot; null: every pilot pooled'),
    sa.Column('effect', sa.Float(), nullable=True, comment='relative effect (-0.15: 15 % lower than without the intervention)'),
    sa.Column('ci_lower', sa.Float(), nullable=True),
    sa.Column('ci_upper', sa.Float(), nullable=True),
    sa.Column('p_value', sa.Float(), nullable=True),
    sa.Column('effect_abs', sa.Float(), nullable=True, comment="effect in the outcome's unit"),
    sa.Column('counterfactual', sa.Float(), nullable=True, comment="the outcome's level without the intervention"),
    sa.Column('pre_fit', sa.Float(), nullable=True, comment='DiD: p-value of the pre-trend test; SC: relative pre-period RMSPE'),
    sa.Column('n_donors', sa.Integer(), nullable=True, comment='comparison territories used (not a count of people)'),
    sa.Column('post_years', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True, comment='French note (e.g. secret statistique: a value depends on a masked cell)'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment='effects per method, outcome and pilot; null where a value depends on a masked cell'
    )
    with op.batch_alter_table('evaluation_effects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_effects_run_id'), ['run_id'], unique=False)

    op.create_table('evaluation_event_study',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('disease', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=60), nullable=False),
    sa.Column('event_time', sa.Integer(), nullable=False, comment='year - start year; -1 is the reference'),
    sa.Column('effect', sa.Float(), nullable=True),
    sa.Column('ci_lower', sa.Float(), nullable=True),
    sa.Column('ci_upper', sa.Float(), nullable=True),
    sa.Column('n_pilots', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment='DiD effects by year since the start; null where a value depends on a masked cell'
    )
    with op.batch_alter_table('evaluation_event_study', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_event_study_run_id'), ['run_id'], unique=False)

    op.create_table('evaluation_outcomes',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('disease', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=60), nullable=False),
    sa.Column('label', sa.Text(), nullable=False, comment='French label of the outcome'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment='the outcomes evaluated, with their French labels: no count'
    )
    with op.batch_alter_table('evaluation_outcomes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_outcomes_run_id'), ['run_id'], unique=False)

    op.create_table('evaluation_power',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('disease', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=60), nullable=False),
    sa.Column('population', sa.Integer(), nullable=False, comment='territory population (not a count of cases)'),
    sa.Column('years_pre', sa.Integer(), nullable=True),
    sa.Column('years_post', sa.Integer(), nullable=True),
    sa.Column('mde', sa.Float(), nullable=True, comment='smallest relative effect detected'),
    sa.Column('alpha', sa.Float(), nullable=True),
    sa.Column('power', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment='minimum detectable effects (area-wide rates and variances): no count'
    )
    with op.batch_alter_table('evaluation_power', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_power_run_id'), ['run_id'], unique=False)

    op.create_table('evaluation_territories',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=False),
    sa.Column('territory_name', sa.String(length=200), nullable=True),
    sa.Column('role', sa.String(length=10), nullable=False, comment='pilot, donor or excluded'),
    sa.Column('start_year', sa.Integer(), nullable=True, comment='pilots: the year the intervention started'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment='pilots, donors (comparison territories) and excluded neighbours: no count'
    )
    with op.batch_alter_table('evaluation_territories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_territories_run_id'), ['run_id'], unique=False)

    op.create_table('evaluation_trajectories',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('disease', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=60), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=False, comment='the pilot'),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('observed', sa.Float(), nullable=True),
    sa.Column('synthetic', sa.Float(), nullable=True, comment='the synthetic control'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment='pilot vs synthetic control; null where a value depends on a masked cell'
    )
    with op.batch_alter_table('evaluation_trajectories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_trajectories_run_id'), ['run_id'], unique=False)

    op.create_table('evaluation_weights',
    sa.Column('row_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('disease', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=60), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=False, comment='the pilot'),
    sa.Column('donor_id', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('row_id'),
    comment="the synthetic control's donor weights; null where they depend on a masked cell"
    )
    with op.batch_alter_table('evaluation_weights', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_weights_run_id'), ['run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('evaluation_weights', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_weights_run_id'))

    op.drop_table('evaluation_weights')
    with op.batch_alter_table('evaluation_trajectories', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_trajectories_run_id'))

    op.drop_table('evaluation_trajectories')
    with op.batch_alter_table('evaluation_territories', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_territories_run_id'))

    op.drop_table('evaluation_territories')
    with op.batch_alter_table('evaluation_power', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_power_run_id'))

    op.drop_table('evaluation_power')
    with op.batch_alter_table('evaluation_outcomes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_outcomes_run_id'))

    op.drop_table('evaluation_outcomes')
    with op.batch_alter_table('evaluation_event_study', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_event_study_run_id'))

    op.drop_table('evaluation_event_study')
    with op.batch_alter_table('evaluation_effects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_effects_run_id'))

    op.drop_table('evaluation_effects')
    with op.batch_alter_table('evaluation_design', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_design_run_id'))

    op.drop_table('evaluation_design')
    with op.batch_alter_table('evaluation_deprivation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_deprivation_run_id'))

    op.drop_table('evaluation_deprivation')
