"""department hierarchy: a department may have a parent (a district government's bureaux, the high-tech zone)

Revision ID: 0010_department_hierarchy
Revises: 0009_applications

``departments.parent_id`` names the parent (NULL: a top-level department). The tree is kept acyclic by the
database itself: a trigger walks up from the new parent and refuses (SQLSTATE 23514, check_violation, naming
``parent_id``) a row that would reach itself. The walk runs under a transaction-scoped advisory lock, so two
concurrent re-parentings (A under B, B under A) cannot each pass the check before the other commits.
Re-parenting is an UPDATE of ``parent_id`` only (the app role's grant); bills stay per department, so a move
changes which roll-ups and district scopes include the department's whole history, never a stored figure.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0010_department_hierarchy"
down_revision: Union[str, None] = "0009_applications"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Also taken by services/billing/hierarchy.py before it checks a move, so its answer and the trigger agree.
TREE_LOCK = "hashtext('govmeter.departments.tree')"


def upgrade() -> None:
    op.add_column('departments', sa.Column('parent_id', sa.Text(), nullable=True))
    op.create_foreign_key(op.f('fk_departments_parent_id_departments'), 'departments', 'departments',
                          ['parent_id'], ['id'])
    op.create_index(op.f('ix_departments_parent_id'), 'departments', ['parent_id'])
    op.execute(
        f"""
        CREATE FUNCTION govmeter_department_acyclic() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.parent_id IS NULL THEN
                RETURN NEW;
            END IF;
            PERFORM pg_advisory_xact_lock({TREE_LOCK});
            IF NEW.parent_id = NEW.id OR EXISTS (
                WITH RECURSIVE up(id) AS (
                    SELECT parent_id FROM departments WHERE id = NEW.parent_id
                    UNION SELECT d.parent_id FROM departments d JOIN up ON d.id = up.id
                )
                SELECT 1 FROM up WHERE id = NEW.id
            ) THEN
                RAISE EXCEPTION 'parent_id: % under % would make a cycle', NEW.id, NEW.parent_id
                    USING ERRCODE = 'check_violation', COLUMN = 'parent_id';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute("CREATE TRIGGER departments_acyclic BEFORE INSERT OR UPDATE OF parent_id ON departments "
               "FOR EACH ROW EXECUTE FUNCTION govmeter_department_acyclic()")


def downgrade() -> None:
    op.execute("DROP TRIGGER departments_acyclic ON departments")
    op.execute("DROP FUNCTION govmeter_department_acyclic()")
    op.drop_index(op.f('ix_departments_parent_id'), table_name='departments')
    op.drop_constraint(op.f('fk_departments_parent_id_departments'), 'departments', type_='foreignkey')
    op.drop_column('departments', 'parent_id')
