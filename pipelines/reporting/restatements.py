"""Restated figures (a resubmission changed a landed value), for the CLI summary and status."""
from __future__ import annotations


def restatements(con, run_id: str | None = None) -> list[dict]:
    """Restatements made by batches of one run (or all, newest first)."""
    sql = """
        select r.kpi_id, r.org_id, r.period, r.previous_value, r.revised_value, r.value_change,
               r.previous_numerator, r.revised_numerator, r.previous_denominator, r.revised_denominator,
               r.revising_batch_id, r.revising_source_file, r.revised_at
        from marts.fct_kpi_restatements r
        join raw.batches b on b.batch_id = r.revising_batch_id
        where cast(? as varchar) is null or b.run_id = ?
        order by r.revised_at desc nulls last, r.kpi_id, r.period, r.org_id
    """
    cur = con.execute(sql, [run_id, run_id])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]
