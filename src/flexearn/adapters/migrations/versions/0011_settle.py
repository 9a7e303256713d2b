"""Each journal entry's balance is summed once per transaction, not once per leg

Revision ID: 0011_settle
Revises: 0010
Create Date: 2026-12-01

PostgreSQL checks at commit that every journal entry's legs sum to zero, by a deferred trigger
that runs once per inserted leg and sums all the legs of its entry: an entry of n legs was summed
n times. A catalog day pays every holder in entries of a hundred users, so a day of a million
holdings summed a hundred million legs. Now the trigger remembers, in a setting local to the
transaction, the last entry it found balanced and the highest leg id it summed then; a later leg
of that entry whose id is not above it (its sum already counted it) is not summed again. Deferred
checks run at commit in the order the legs were inserted, so each entry is summed once; a leg
inserted later into an entry already checked (only possible with the constraint set IMMEDIATE)
has a higher id and is summed again. What is refused is unchanged.
"""

from alembic import op

revision = '0011_settle'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION flexearn_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            checked text := current_setting('flexearn.balanced_entry', true);
            total numeric;
            last_leg bigint;
        BEGIN
            IF checked IS NOT NULL AND checked <> ''
               AND split_part(checked, ':', 1)::bigint = NEW.entry_id
               AND NEW.id <= split_part(checked, ':', 2)::bigint THEN
                RETURN NULL;
            END IF;
            SELECT sum(amount), max(id) INTO total, last_leg FROM journal_leg WHERE entry_id = NEW.entry_id;
            IF total <> 0 THEN
                RAISE EXCEPTION 'journal entry % does not balance', NEW.entry_id;
            END IF;
            PERFORM set_config('flexearn.balanced_entry', NEW.entry_id || ':' || last_leg, true);
            RETURN NULL;
        END $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION flexearn_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT sum(amount) FROM journal_leg WHERE entry_id = NEW.entry_id) <> 0 THEN
                RAISE EXCEPTION 'journal entry % does not balance', NEW.entry_id;
            END IF;
            RETURN NULL;
        END $$
        """
    )
