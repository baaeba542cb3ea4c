"""model_metrics and model_calibration: the target, the AUC interval, the Brier skill, the calibration slope and intercept

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

METRICS = [
    ('auc_lower', 'DeLong interval'),
    ('auc_upper', None),
    ('brier_skill', '1 - brier / brier_reference: > 0 beats the prevalence'),
    ('calibration_slope', None),
    ('calibration_slope_lower', None),
    ('calibration_slope_upper', None),
    ('calibration_intercept', 'calibration-in-the-large'),
    ('calibration_intercept_lower', None),
    ('calibration_intercept_upper', None),
    ('recalibration_intercept', 'temporal recalibration applied (null: none)'),
    ('recalibration_slope', None),
]
TARGET = 'upstratum (higher stratum or death) or emergency_or_death'


def upgrade() -> None:
    with op.batch_alter_table('model_metrics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target', sa.String(length=40), nullable=True, comment=TARGET))
        for name, comment in METRICS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True, comment=comment))
    with op.batch_alter_table('model_calibration', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target', sa.String(length=40), nullable=True, comment=TARGET))


def downgrade() -> None:
    with op.batch_alter_table('model_calibration', schema=None) as batch_op:
        batch_op.drop_column('target')
    with op.batch_alter_table('model_metrics', schema=None) as batch_op:
        for name, _ in reversed(METRICS):
            batch_op.drop_column(name)
        batch_op.drop_column('target')
