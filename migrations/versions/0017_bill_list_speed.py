"""bill list speed: usage versions per department and month, and final bills' department names as a column

Revision ID: 0017_bill_list_speed
Revises: 0016_partition_usage_hourly

``usage_versions`` counts, per department and local month, the writes to that department's rows of
``usage_daily``: the rollup statement bumps it in the same transaction (services/projection/rollups.py). A usage
baseline now records the version its fingerprint was taken at (``usage_baselines.usage_version``), so a draft
recomputes a closed month's fingerprint only where the version moved since (docs/bill-list-speed.md).

The backfill: every (department, month) with daily usage or a baseline gets version 0 where its fingerprint now
equals its latest baseline's (or both are "no usage"), else 1. A baseline recorded before this migration has no
version and counts as version 0: the latest one per (department, month) is then exact, and only the latest is
ever compared. ``usage_daily`` is locked against writers meanwhile.

``bills.department_name`` is generated from the stored document (the name as issued): a list of final bills
reads it without fetching or parsing the documents, and it can never disagree with them.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0017_bill_list_speed"
down_revision: Union[str, None] = "0016_partition_usage_hourly"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The fingerprint of services.bill_reads.bills.usage_digests (the same rows, order and text).
_DIGESTS = """
    SELECT department_id, to_char(day, 'YYYY-MM') AS period,
           encode(sha256(convert_to(string_agg(
               concat_ws('|', day, system, meter, trim_scale(quantity), trim_scale(amount),
                         trim_scale(unpriced_quantity)), ';' ORDER BY day, system, meter), 'UTF8')), 'hex') AS digest
    FROM usage_daily
    WHERE department_id IS NOT NULL AND NOT (quantity = 0 AND amount = 0 AND unpriced_quantity = 0)
    GROUP BY 1, 2"""


def upgrade() -> None:
    op.create_table(
        'usage_versions',
        sa.Column('department_id', sa.Text(), nullable=False),
        sa.Column('period', sa.Text(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('department_id', 'period', name=op.f('pk_usage_versions')),
    )
    op.add_column('usage_baselines', sa.Column('usage_version', sa.BigInteger(), nullable=True))
    op.execute("LOCK TABLE usage_daily IN SHARE MODE")
    op.execute(
        f"""
        INSERT INTO usage_versions (department_id, period, version)
        WITH now AS ({_DIGESTS}),
        keys AS (
            SELECT DISTINCT department_id, to_char(day, 'YYYY-MM') AS period FROM usage_daily
            WHERE department_id IS NOT NULL
            UNION SELECT department_id, period FROM usage_baselines),
        latest AS (
            SELECT DISTINCT ON (department_id, period) department_id, period, digest FROM usage_baselines
            ORDER BY department_id, period, id DESC)
        SELECT k.department_id, k.period,
               CASE WHEN coalesce(n.digest, 'none') = coalesce(l.digest, 'none') THEN 0 ELSE 1 END
        FROM keys k LEFT JOIN now n USING (department_id, period) LEFT JOIN latest l USING (department_id, period)
        """
    )
    # convert_from is STABLE only because the encoding is a parameter; with 'UTF8' fixed it is immutable.
    op.execute(
        """
        CREATE FUNCTION govmeter_document_department_name(document bytea) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT convert_from(document, 'UTF8')::jsonb ->> 'department_name' $$
        """
    )
    op.execute("ALTER TABLE bills ADD COLUMN department_name text"
               " GENERATED ALWAYS AS (govmeter_document_department_name(document)) STORED")


def downgrade() -> None:
    op.drop_column('bills', 'department_name')
    op.execute("DROP FUNCTION govmeter_document_department_name(bytea)")
    op.drop_column('usage_baselines', 'usage_version')
    op.drop_table('usage_versions')
