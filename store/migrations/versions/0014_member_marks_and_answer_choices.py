"""where each member joined and bought and what they bought (member_marks, kept by enrolment
and purchases.record) and the choice keys of their answers (answer_choices, kept by
profile.save_answer): a segment's store, category or answer is one range of a key in member
order instead of a set built per count

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = store.models.UTCDateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Each member's store joined at, stores bought at and categories so far, with the latest
# purchase of each (store.loyalty.marks.mark: enrolment and purchases.record keep them from
# here on).
_FILL_JOINED = sa.text(
    "INSERT INTO member_marks (program_id, kind, name, member_id, last_at) "
    "SELECT program_id, 'joined', store, id, coalesce(joined_at, created_at) FROM members "
    "WHERE store IS NOT NULL AND store != ''"
)
_FILL_STORES = sa.text(
    "INSERT INTO member_marks (program_id, kind, name, member_id, last_at) "
    "SELECT program_id, 'store', store, member_id, max(occurred_at) FROM purchases "
    "WHERE store IS NOT NULL AND store != '' GROUP BY program_id, store, member_id"
)
_FILL_CATEGORIES = sa.text(
    "INSERT INTO member_marks (program_id, kind, name, member_id, last_at) "
    "SELECT purchase_lines.program_id, 'category', purchase_lines.category, "
    "purchase_lines.member_id, max(purchases.occurred_at) "
    "FROM purchase_lines JOIN purchases ON purchases.id = purchase_lines.purchase_id "
    "WHERE purchase_lines.category IS NOT NULL AND purchase_lines.category != '' "
    "GROUP BY purchase_lines.program_id, purchase_lines.category, purchase_lines.member_id"
)
# The keys of the answers to choice questions (a JSON list each), once per answer.
_FILL_CHOICES = {
    "sqlite": sa.text(
        "INSERT INTO answer_choices (question_id, choice, member_id, answer_id) "
        "SELECT DISTINCT a.question_id, key.value, a.member_id, a.id "
        "FROM profile_answers AS a JOIN profile_questions AS q ON q.id = a.question_id, "
        "json_each(a.value) AS key "
        "WHERE q.kind IN ('choice', 'multichoice') AND key.type = 'text'"
    ),
    "postgresql": sa.text(
        "INSERT INTO answer_choices (question_id, choice, member_id, answer_id) "
        "SELECT DISTINCT a.question_id, key.value, a.member_id, a.id "
        "FROM profile_answers AS a JOIN profile_questions AS q ON q.id = a.question_id, "
        "json_array_elements_text(a.value) AS key(value) "
        "WHERE q.kind IN ('choice', 'multichoice')"
    ),
}


def upgrade() -> None:
    op.create_table(
        "member_marks",
        sa.Column("program_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("last_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_member_marks_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_member_marks_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "program_id", "kind", "name", "member_id", name=op.f("pk_member_marks")
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_member_marks_member_id", "member_marks", ["member_id"])
    op.create_table(
        "answer_choices",
        sa.Column("question_id", _ID, nullable=False),
        sa.Column("choice", sa.Text(), nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("answer_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["profile_answers.id"],
            name=op.f("fk_answer_choices_answer_id_profile_answers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["profile_questions.id"],
            name=op.f("fk_answer_choices_question_id_profile_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "question_id", "choice", "member_id", name=op.f("pk_answer_choices")
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_answer_choices_answer_id", "answer_choices", ["answer_id"])
    conn = op.get_bind()
    conn.execute(_FILL_JOINED)
    conn.execute(_FILL_STORES)
    conn.execute(_FILL_CATEGORIES)
    conn.execute(_FILL_CHOICES[conn.dialect.name])
    if conn.dialect.name == "postgresql":
        # Statistics for the planner now, not when autovacuum comes round: until then it takes
        # the filled tables for empty ones.
        conn.execute(sa.text("ANALYZE member_marks"))
        conn.execute(sa.text("ANALYZE answer_choices"))


def downgrade() -> None:
    op.drop_index("ix_answer_choices_answer_id", table_name="answer_choices")
    op.drop_table("answer_choices")
    op.drop_index("ix_member_marks_member_id", table_name="member_marks")
    op.drop_table("member_marks")
