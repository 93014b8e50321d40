"""Official returns as they are published, read by configuration alone: generated workbooks
(.xlsx with openpyxl, legacy .xls with xlwt) with a title block, the period in a `Period:` cell
or in the file name, a two-row header with repeated column names under two group headings,
national, subtotal and footnote rows, `-` markers, a sheet renamed between years and columns
added in later years. Every data row ends up landed, excluded by a named rule, or quarantined
with a named reason; a whole file the mapping cannot read is refused with file, sheet and what
was expected."""
import datetime as dt
import json

import pytest
import yaml

from pipelines.catalog.loader import CatalogError, load_catalog
from pipelines.ingest.landing import ingest_source
from pipelines.warehouse import connect

AS_OF = dt.date(2026, 11, 15)
ATT, BR = "A&E attendances", "A&E attendances > 4 hours"
T1, OTHER, T2 = "Type 1 Departments - Major A&E", "Other A&E Departments", "Type 2 Departments - Single Specialty"


def sheet_rows(period: str, added_type2: bool = False, title: bool = True) -> list[list]:
    """One month's provider sheet. Data rows: a national row, three providers (one with a `-`
    marker), a subtotal and a footnote."""
    kinds = [T1, OTHER] + ([T2] if added_type2 else [])
    group = ["", ""] + [ATT] + [""] * (len(kinds) - 1) + [BR] + [""] * (len(kinds) - 1)
    heading = ["Code", "Name"] + kinds + kinds

    def data(code, name, att, br):
        extra = [7] if added_type2 else []
        return [code, name, att, 50, *extra, br, 5, *extra]

    top = [["Title:", "A&E attendances and emergency admissions"], ["Period:", period], []] if title else []
    return top + [group, heading,
                  data("-", "England", 1000, 100),     # national row: excluded by rule
                  data("R1", "Trust one", 600, 60),
                  data("R2", "Trust two", 400, "-"),   # `-`: no value, quarantined as missing_value
                  data("R3", "Trust three", 0, 0),
                  data("", "Total", 1000, 100),        # subtotal: excluded by rule
                  ["Note: provisional figures"]]       # footnote: excluded by rule


def write_xlsx(path, sheets: dict[str, list[list]]):
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


def write_xls(path, sheets: dict[str, list[list]]):
    import xlwt

    wb = xlwt.Workbook()
    for name, rows in sheets.items():
        ws = wb.add_sheet(name)
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                if v != "":
                    ws.write(r, c, v)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(str(path))


WRITERS = {"xlsx": write_xlsx, "xls": write_xls}
RULES = [
    {"name": "national", "exclude": {"column": "Name", "equals": "England"}},
    {"name": "subtotal", "exclude": {"column": "Name", "equals": "Total"}},
    {"name": "footnote", "exclude": {"column": "Code", "matches": "^Note"}},
]
AE_COLUMNS = {
    "kpi_id": {"constant": "ae_type1"},
    "period": {"title": "Period:"},
    "org_id": "Code",
    # "Type 1 ..." stands under both group headings: each is named with its group
    "numerator": {"subtract": [f"{ATT} / {T1}", f"{BR} / {T1}"]},
    "denominator": f"{ATT} / {T1}",
}


def source(**over) -> dict:
    base = {"id": "ae_returns", "department": "health", "kind": "excel", "path": "ae/*.xls*",
            "sheet": ["A&E Data", "Provider Level Data"], "header_label": "Code", "header_rows": 2,
            "cadence": "monthly", "row_rules": RULES, "columns": AE_COLUMNS}
    return {**base, **over}


def make_catalog(tmp_path, src: dict, kpi_id: str = "ae_type1"):
    cat = tmp_path / "catalog"
    cat.mkdir(exist_ok=True)
    (cat / "departments.yml").write_text(yaml.safe_dump({"departments": [
        {"id": src["department"], "name": "Health", "channel": "#health"}]}))
    (cat / "sources.yml").write_text(yaml.safe_dump({"sources": [src]}, sort_keys=False))
    (cat / "kpis.yml").write_text(yaml.safe_dump({"kpis": [{
        "id": kpi_id, "name": "Type 1 A&E seen within 4 hours", "department": src["department"], "source": src["id"],
        "owner": {"name": "Lead"}, "unit": "percent", "direction": "higher_is_better", "frequency": "monthly",
        "aggregation": "ratio", "scale": 100, "tolerance": 1.0, "baseline": {"value": 95.0, "date": "2015-03-31"},
        "targets": [{"value": 95.0, "due": "2026-03-31"}]}]}))
    return load_catalog(cat)


def land(tmp_path, catalog, run_id="r1"):
    with connect(tmp_path / "w.duckdb") as con:
        return ingest_source(con, catalog, catalog_source_id(catalog), tmp_path / "data", AS_OF, run_id,
                             now=dt.datetime(2026, 11, 15, 12))


def catalog_source_id(catalog):
    [sid] = catalog.sources
    return sid


def rows(tmp_path, sql, params=None):
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def assert_every_row_accounted(tmp_path, batch, data_rows: int):
    """Each data row is landed, excluded by a named rule, or quarantined with a named reason."""
    excluded = rows(tmp_path, "select rule, rows from raw.excluded_rows where batch_id = ?", [batch.batch_id])
    landed = rows(tmp_path, "select count(*) n from raw.observations where batch_id = ?", [batch.batch_id])[0]["n"]
    quarantined = rows(tmp_path, "select reason from raw.quarantine where batch_id = ?", [batch.batch_id])
    assert all(q["reason"] for q in quarantined) and all(e["rule"] for e in excluded)
    assert landed + len(quarantined) + sum(e["rows"] for e in excluded) == data_rows
    [b] = rows(tmp_path, "select rows_in, rows_accepted, rows_quarantined, rows_excluded from raw.batches where batch_id = ?",
               [batch.batch_id])
    assert b["rows_in"] == b["rows_accepted"] + b["rows_quarantined"] and b["rows_excluded"] == sum(e["rows"] for e in excluded)


@pytest.mark.parametrize("ext", ["xlsx", "xls"])
def test_title_cell_period_two_row_header_and_row_rules(tmp_path, ext):
    WRITERS[ext](tmp_path / "data" / "ae" / f"return.{ext}", {"Cover": [["About this return"]],
                                                             "A&E Data": sheet_rows("April 2016")})
    [batch] = land(tmp_path, make_catalog(tmp_path, source())).batches
    assert batch.excluded == {"national": 1, "subtotal": 1, "footnote": 1}
    assert batch.reasons == {"missing_value": 1}  # R2's `-` is no value, never a zero
    assert (batch.rows_in, batch.rows_accepted, batch.rows_quarantined) == (3, 2, 1)
    assert_every_row_accounted(tmp_path, batch, 6)
    obs = rows(tmp_path, "select org_id, period, numerator, denominator from raw.observations order by org_id")
    assert obs == [{"org_id": "R1", "period": dt.date(2016, 4, 1), "numerator": 540.0, "denominator": 600.0},
                   {"org_id": "R3", "period": dt.date(2016, 4, 1), "numerator": 0.0, "denominator": 0.0}]
    [b] = rows(tmp_path, "select sheet, period_origin from raw.batches")
    assert b == {"sheet": "A&E Data", "period_origin": "title cell A&E Data!B2 beside 'Period:': 'April 2016'"}
    [q] = rows(tmp_path, "select row_number, detail, record from raw.quarantine")
    assert q["row_number"] == 3 and json.loads(q["record"])["Code"] == "R2"
    from pipelines.ingest.readers import sheet_row_of

    [m] = rows(tmp_path, "select row_map from raw.batches")
    assert sheet_row_of(m["row_map"], 3) == 8  # record 3 (R2) is row 8 of the sheet, under a 5-row top
    assert "marks a missing value" in q["detail"]
    assert "excluded by rule footnote" in batch.message() and "1 of 3 rows quarantined" in batch.message()


def test_a_ten_year_series_renamed_sheet_and_added_columns_keep_one_history(tmp_path):
    # 2016: sheet "A&E Data" first; 2019: "Provider Level Data" third, with a Type 2 column in
    # each group. No contract: only mapped columns could refuse a file, and none changed.
    write_xlsx(tmp_path / "data" / "ae" / "2016-04.xlsx", {"A&E Data": sheet_rows("April 2016")})
    write_xlsx(tmp_path / "data" / "ae" / "2019-04.xlsx", {"Notes": [["n"]], "Summary": [["s"]],
                                                          "Provider Level Data": sheet_rows("April 2019", True)})
    batches = land(tmp_path, make_catalog(tmp_path, source())).batches
    assert [b.reasons for b in batches] == [{"missing_value": 1}, {"missing_value": 1}]
    assert [b.rows_accepted for b in batches] == [2, 2]
    for b in batches:
        assert_every_row_accounted(tmp_path, b, 6)
    schemas = rows(tmp_path, "select verdict, changes from quality.batch_schemas order by recorded_at")
    assert schemas[0] == {"verdict": "baseline", "changes": None}
    assert schemas[1]["verdict"] == "matches"
    assert f"column added '{ATT} / {T2}' (not mapped)" in schemas[1]["changes"]
    periods = rows(tmp_path, "select distinct period from raw.observations order by 1")
    assert [r["period"] for r in periods] == [dt.date(2016, 4, 1), dt.date(2019, 4, 1)]


def test_repeated_names_without_group_headings_are_refused_with_their_positions(tmp_path):
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"A&E Data": sheet_rows("April 2016")})
    # header_rows 1: the two "Type 1 ..." columns cannot be told apart
    [batch] = land(tmp_path, make_catalog(tmp_path, source(header_rows=1))).batches
    assert batch.reasons == {"unreadable_source": 1}
    assert f"duplicate column name(s) in the header: '{T1}' in columns C, E" in batch.problem
    assert "r.xlsx" in batch.problem


def test_a_bare_name_under_two_group_headings_is_ambiguous(tmp_path):
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"A&E Data": sheet_rows("April 2016")})
    cols = {**AE_COLUMNS, "numerator": T1, "denominator": T1}
    [batch] = land(tmp_path, make_catalog(tmp_path, source(columns=cols))).batches
    assert batch.reasons == {"ambiguous_column": 6} and batch.rows_accepted == 0
    assert f"'{T1}' stands in 2 columns: '{ATT} / {T1}' (column C), '{BR} / {T1}' (column E)" in batch.problem
    assert "sheet 'A&E Data'" in batch.problem


def test_columns_by_letter_and_position(tmp_path):
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"A&E Data": sheet_rows("April 2016")})
    cols = {**AE_COLUMNS, "org_id": "$A", "numerator": {"subtract": ["$3", "$E"]}, "denominator": "$C"}
    [batch] = land(tmp_path, make_catalog(tmp_path, source(columns=cols))).batches
    assert batch.rows_accepted == 2
    assert rows(tmp_path, "select sum(numerator) n from raw.observations")[0]["n"] == 540.0


@pytest.mark.parametrize("ext", ["xlsx", "xls"])
def test_period_from_the_file_name(tmp_path, ext):
    for name, period in (("AE-Apr16-revised", "April 2016"), ("AE-May16 (1)", "May 2016")):
        WRITERS[ext](tmp_path / "data" / "ae" / f"{name}.{ext}", {"A&E Data": sheet_rows(period, title=False),
                                                                 "Notes": [[f"Published for {period}"]]})
    cols = {**AE_COLUMNS, "period": {"file_name": r"AE-(?P<month>[A-Z][a-z]{2})(?P<year>\d{2})"}}
    batches = land(tmp_path, make_catalog(tmp_path, source(columns=cols, header_row=2))).batches
    assert [b.rows_accepted for b in batches] == [2, 2]
    got = rows(tmp_path, "select distinct period, b.period_origin from raw.observations join raw.batches b using (batch_id) order by 1")
    assert got == [{"period": dt.date(2016, 4, 1), "period_origin": f"file name 'AE-Apr16-revised.{ext}': '2016-04'"},
                   {"period": dt.date(2016, 5, 1), "period_origin": f"file name 'AE-May16 (1).{ext}': '2016-05'"}]


def test_period_from_the_sheet_name_and_a_fixed_cell(tmp_path):
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"2016-04": sheet_rows("ignored")})
    cols = {**AE_COLUMNS, "period": {"sheet_name": True}}
    [batch] = land(tmp_path, make_catalog(tmp_path, source(columns=cols, sheet=1))).batches
    assert batch.rows_accepted == 2
    cols = {**AE_COLUMNS, "period": {"cell": "B2", "format": "%B %Y"}}
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"A&E Data": sheet_rows("June 2016")})
    [batch] = land(tmp_path, make_catalog(tmp_path, source(columns=cols)), run_id="r2").batches
    assert batch.rows_accepted == 2
    assert rows(tmp_path, "select max(period) p from raw.observations")[0]["p"] == dt.date(2016, 6, 1)


def test_no_period_cell_refuses_the_file_with_file_and_sheet_named(tmp_path):
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"A&E Data": sheet_rows("x", title=False)})
    [batch] = land(tmp_path, make_catalog(tmp_path, source(header_row=2))).batches
    assert batch.reasons == {"period_not_found": 6}
    assert batch.problem == ("ae/r.xlsx, sheet 'A&E Data': no cell 'Period:' with a value beside it above the "
                             "header of sheet 'A&E Data'")
    assert_every_row_accounted(tmp_path, batch, 6)


@pytest.mark.parametrize("sheet, message", [
    (["Provider Data"], "none of the sheets 'Provider Data' found (sheets: 'Cover', 'Data 2016')"),
    ({"pattern": "Provider.*"}, "no sheet name matches the pattern 'Provider.*' (sheets: 'Cover', 'Data 2016')"),
    ({"header_contains": "Org code"}, "no sheet has a cell 'Org code' in its first 50 rows (sheets: 'Cover', 'Data 2016')"),
])
def test_no_matching_sheet_lists_the_sheets(tmp_path, sheet, message):
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"Cover": [["x"]], "Data 2016": sheet_rows("April 2016")})
    [batch] = land(tmp_path, make_catalog(tmp_path, source(sheet=sheet))).batches
    assert batch.reasons == {"unreadable_source": 1}
    assert batch.problem == f"ae/r.xlsx: {message}"


@pytest.mark.parametrize("sheet", [{"pattern": r"Data \d{4}"}, {"header_contains": "Code"}])
def test_sheet_by_pattern_or_header_label(tmp_path, sheet):
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"Cover": [["x"]], "Data 2016": sheet_rows("April 2016")})
    [batch] = land(tmp_path, make_catalog(tmp_path, source(sheet=sheet))).batches
    assert batch.rows_accepted == 2


def test_declared_layouts_choose_the_mapping_by_header(tmp_path):
    # Later returns call the code column "Org Code": a second declared layout maps it.
    later = sheet_rows("May 2016")
    later[4] = ["Org Code"] + later[4][1:]
    write_xlsx(tmp_path / "data" / "ae" / "a.xlsx", {"A&E Data": sheet_rows("April 2016")})
    write_xlsx(tmp_path / "data" / "ae" / "b.xlsx", {"A&E Data": later})
    write_xlsx(tmp_path / "data" / "ae" / "c.xlsx", {"A&E Data": [["Period:", "June 2016"], [], [], [],
                                                                 ["Provider", "Value"], ["R1", 1]]})
    layouts = [{"name": "y2016", "header_contains": ["Code"]},
               {"name": "y2016_org", "header_contains": ["Org Code"], "columns": {"org_id": "Org Code"},
                "row_rules": [{"name": "footnote", "exclude": {"column": "Org Code", "matches": "^Note"}},
                              {"name": "named_rows", "exclude": {"column": "Name", "in": ["England", "Total"]}}]}]
    src = source(layouts=layouts, header_label=None, header_row=5)
    src.pop("header_label")
    batches = land(tmp_path, make_catalog(tmp_path, src)).batches
    assert [b.rows_accepted for b in batches[:2]] == [2, 2]
    assert batches[1].excluded == {"footnote": 1, "named_rows": 2}
    assert rows(tmp_path, "select layout from raw.batches order by source_file")[:2] == [{"layout": "y2016"}, {"layout": "y2016_org"}]
    assert batches[2].reasons == {"unknown_layout": 1}
    assert batches[2].problem == ("ae/c.xlsx, sheet 'A&E Data': the header fits no declared layout (y2016 lacks 'Code'; "
                                  "y2016_org lacks 'Org Code'): declare this layout in the source's `layouts`")


def test_a_mapping_change_reads_refused_files_again(tmp_path):
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"A&E Data": sheet_rows("April 2016")})
    wrong = {**AE_COLUMNS, "denominator": "Attendances"}
    [first] = land(tmp_path, make_catalog(tmp_path, source(columns=wrong))).batches
    assert first.reasons == {"missing_column": 3} and first.rows_accepted == 0
    assert land(tmp_path, make_catalog(tmp_path, source(columns=wrong)), run_id="r2").batches == []  # same mapping: no-op
    [again] = land(tmp_path, make_catalog(tmp_path, source()), run_id="r3").batches
    assert again.reread and again.rows_accepted == 2 and again.batch_id != first.batch_id
    assert "read again: its source's mapping changed" in again.message()
    assert land(tmp_path, make_catalog(tmp_path, source()), run_id="r4").batches == []


def test_catalog_names_bad_reading_configuration(tmp_path):
    bad = source(columns={**AE_COLUMNS, "org_id": {"title": "Org:"}},
                 row_rules=[{"name": "subtotal", "exclude": {"column": "Name"}},
                            {"name": "bad_rx", "include": {"column": "Name", "matches": "(["}}],
                 sheet={"pattern": "*"})
    with pytest.raises(CatalogError) as err:
        make_catalog(tmp_path, bad)
    text = str(err.value)
    assert "sources.columns.org_id" not in text  # paths are full
    assert "sources[0].columns.org_id: 'title' gives a batch's period: map it under 'period' only" in text
    assert "sources[0].row_rules[0].exclude: a row rule's condition has exactly one of" in text
    assert "sources[0].row_rules[1].include.matches: '([' is not a valid regular expression" in text
    assert "sources[0].sheet.pattern: '*' is not a valid regular expression" in text


def test_a_source_that_read_none_of_its_new_files_is_named_once_per_cause(tmp_path):
    from pipelines.cli_ingest import nothing_read

    for name, month in (("a", "April"), ("b", "May"), ("c", "June")):
        write_xlsx(tmp_path / "data" / "ae" / f"{name}.xlsx", {"Sheet1": sheet_rows(f"{month} 2016")})
    (tmp_path / "data" / "ae" / "c-copy.xlsx").write_bytes((tmp_path / "data" / "ae" / "c.xlsx").read_bytes())  # twice
    land(tmp_path, make_catalog(tmp_path, source()))  # sheets "A&E Data" / "Provider Level Data" absent
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert nothing_read(con, "r1") == [
            "source ae_returns read none of its 3 new file(s): unreadable_source × 3 file(s) "
            "(none of the sheets 'A&E Data', 'Provider Level Data' found (sheets: 'Sheet1'))"]
    write_xlsx(tmp_path / "data" / "ae" / "d.xlsx", {"A&E Data": sheet_rows("July 2016")})
    land(tmp_path, make_catalog(tmp_path, source()), run_id="r2")
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert nothing_read(con, "r2") == []  # the new file was read


def test_inspect_shows_sheet_header_period_rules_and_rows(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    make_catalog(tmp_path, source())
    book = tmp_path / "return.xlsx"
    write_xlsx(book, {"Cover": [["x"]], "A&E Data": sheet_rows("April 2016")})
    result = CliRunner().invoke(app, ["inspect", str(book), "--source", "ae_returns", "--catalog", str(tmp_path / "catalog")])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "sheets: 'Cover', 'A&E Data'" in text and "sheet read: 'A&E Data'" in text
    assert f"{ATT} / {T1}" in text and "period: title cell A&E Data!B2 beside 'Period:': 'April 2016'" in text
    assert "excluded by rule national: 1 row(s)" in text and "excluded by rule footnote: 1 row(s)" in text
    assert "would be quarantined: missing_value × 1" in text
    assert "2 row(s) would be landed, 1 quarantined, 3 excluded by rule" in text
    write_xlsx(book, {"Cover": [["x"]]})
    result = CliRunner().invoke(app, ["inspect", str(book), "--source", "ae_returns", "--catalog", str(tmp_path / "catalog")])
    assert result.exit_code == 1 and "refused: unreadable_source" in result.output


def test_excluded_rows_and_batch_reading_columns_land_on_postgres(tmp_path, monkeypatch):
    from tests.support.pg import fresh_database, pg_env

    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"A&E Data": sheet_rows("April 2016")})
    catalog = make_catalog(tmp_path, source())
    with fresh_database() as db:
        for k, v in pg_env(db).items():
            monkeypatch.setenv(k, v)
        [batch] = land(tmp_path, catalog).batches
        assert batch.excluded == {"national": 1, "subtotal": 1, "footnote": 1} and batch.rows_accepted == 2
        assert land(tmp_path, catalog, run_id="r2").batches == []  # same file, same mapping: a no-op
        with connect(tmp_path / "w.duckdb", read_only=True) as con:
            got = con.execute("select rule, rows from raw.excluded_rows order by rule").fetchall()
            origin = con.execute("select period_origin from raw.batches").fetchall()
    assert [tuple(r) for r in got] == [("footnote", 1), ("national", 1), ("subtotal", 1)]
    assert [tuple(r) for r in origin] == [("title cell A&E Data!B2 beside 'Period:': 'April 2016'",)]


def test_the_documented_ten_year_series_example_reads_such_a_series(tmp_path):
    """docs/sources.md's worked example, as written, on a generated series: .xls in 2016,
    a renamed sheet with added columns in 2019, a renamed code column in 2024 (its layout)."""
    from pipelines.config import PROJECT_ROOT

    doc = (PROJECT_ROOT / "docs" / "sources.md").read_text()
    section = doc.split("### Worked example: a ten-year series of official monthly workbooks")[1]
    blocks = [b.split("```")[0] for b in section.split("```yaml\n")[1:3]]
    [src] = yaml.safe_load(blocks[0])
    src["layouts"] = yaml.safe_load(blocks[1])["layouts"]
    write_xls(tmp_path / "data" / "ae" / "2016-04.xls", {"A&E Data": sheet_rows("April 2016")})
    write_xlsx(tmp_path / "data" / "ae" / "2019-04.xlsx", {"Notes": [["n"]], "Provider Level Data": sheet_rows("April 2019", True)})
    later = sheet_rows("April 2024", True)
    later[4] = ["Org Code"] + later[4][1:]
    later[-1] = ["Source: NHS England"]
    write_xlsx(tmp_path / "data" / "ae" / "2024-04.xlsx", {"Provider Level Data": later})
    batches = land(tmp_path, make_catalog(tmp_path, src, "ae_type1_four_hours")).batches
    assert [(b.rows_accepted, b.reasons, b.excluded) for b in batches] == [
        (2, {"missing_value": 1}, {"national": 1, "subtotal": 1, "footnote": 1})] * 3
    layouts = rows(tmp_path, "select layout from raw.batches order by source_file")
    assert [r["layout"] for r in layouts] == ["code", "code", "org_code"]


@pytest.mark.parametrize("pattern, name, expected", [
    (r"(?P<year>\d{4})-(?P<month>\d{2})", "returns 2019-04 final.xlsx", "2019-04"),
    (r"(?P<month>[A-Za-z]+)-(?P<year>\d{4})", "AE-September-2016.xlsx", "2016-09"),
    (r"(?P<year>\d{4})-?Q(?P<quarter>[1-4])", "kpi_2020Q3.xlsx", "2020-Q3"),
    (r"(?P<period>[A-Z][a-z]+ \d{4})", "Return March 2021.xlsx", "March 2021"),
])
def test_file_name_period_parts(pattern, name, expected):
    from pipelines.ingest.layout import batch_period
    from pipelines.ingest.readers import RawBatch

    batch = RawBatch("s", f"dir/{name}", "sha", None, [])
    value, _, origin = batch_period({"file_name": pattern}, batch)
    assert value == expected and origin == f"file name {name!r}"


@pytest.mark.parametrize("pattern, name, problem", [
    (r"(?P<year>\d{4})-(?P<month>\d{2})", "returns.xlsx", r"does not match the pattern '(?P<year>\d{4})-(?P<month>\d{2})'"),
    (r"(?P<year>\w+)-(?P<month>\w+)", "abc-Foo.xlsx", "year 'abc' is not 2 or 4 digits"),
    (r"(?P<year>\d{4})-(?P<month>\w+)", "2019-Foo.xlsx", "'Foo' is not a month"),
    (r"(?P<year>\d{4})", "2019.xlsx", "the pattern needs named parts"),
])
def test_file_name_period_problems_are_named(pattern, name, problem):
    from pipelines.ingest.layout import Refused, batch_period
    from pipelines.ingest.readers import RawBatch

    with pytest.raises(Refused) as exc:
        batch_period({"file_name": pattern}, RawBatch("s", name, "sha", None, []))
    assert exc.value.reason == "period_not_found" and problem in exc.value.detail


def test_a_row_rule_on_a_column_that_is_gone_refuses_the_file(tmp_path):
    # Without its column the subtotal rule would silently stop excluding: totals counted twice.
    write_xlsx(tmp_path / "data" / "ae" / "r.xlsx", {"A&E Data": sheet_rows("April 2016")})
    rules = RULES + [{"name": "subtotal_flag", "exclude": {"column": "Row type", "equals": "subtotal"}}]
    [batch] = land(tmp_path, make_catalog(tmp_path, source(row_rules=rules))).batches
    assert batch.reasons == {"missing_column": 3} and batch.rows_accepted == 0
    assert "missing column(s) 'Row type'" in batch.problem


def test_files_with_the_period_in_their_name_are_read_in_period_order(tmp_path):
    for name, period in (("AE-Jan15", "January 2015"), ("AE-Dec14", "December 2014"), ("AE-Feb15", "February 2015")):
        write_xlsx(tmp_path / "data" / "ae" / f"{name}.xlsx", {"A&E Data": sheet_rows(period, title=False),
                                                              "Notes": [[period]]})
    cols = {**AE_COLUMNS, "period": {"file_name": r"AE-(?P<month>[A-Z][a-z]{2})(?P<year>\d{2})"}}
    batches = land(tmp_path, make_catalog(tmp_path, source(columns=cols, header_row=2))).batches
    assert [b.source_file for b in batches] == ["ae/AE-Dec14.xlsx", "ae/AE-Jan15.xlsx", "ae/AE-Feb15.xlsx"]


def test_a_missing_header_label_names_file_and_sheet(tmp_path):
    write_xls(tmp_path / "data" / "ae" / "r.xls", {"A&E Data": [["Period:", "April 2016"], ["Provider", "Value"]]})
    [batch] = land(tmp_path, make_catalog(tmp_path, source())).batches
    assert batch.reasons == {"unreadable_source": 1}
    assert batch.problem == "ae/r.xls: sheet 'A&E Data': no row with the header label 'Code' in the first 50 rows"


def test_a_refused_batch_is_no_schema_reference_for_the_next(tmp_path):
    # r1: no period cell (refused whole); r2, with another unmapped column, is compared with
    # nothing earlier than itself and is the baseline.
    write_xlsx(tmp_path / "data" / "ae" / "a.xlsx", {"A&E Data": [[], [], [], *sheet_rows("x", title=False)]})
    land(tmp_path, make_catalog(tmp_path, source()))
    write_xlsx(tmp_path / "data" / "ae" / "b.xlsx", {"A&E Data": sheet_rows("May 2016", True)})
    [batch] = land(tmp_path, make_catalog(tmp_path, source()), run_id="r2").batches
    assert batch.rows_accepted == 2
    verdicts = rows(tmp_path, "select run_id, verdict, compared_with from quality.batch_schemas order by run_id")
    assert verdicts == [{"run_id": "r1", "verdict": "refused", "compared_with": None},
                        {"run_id": "r2", "verdict": "baseline", "compared_with": None}]


def test_inspect_a_whole_series_one_line_per_file(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    make_catalog(tmp_path, source())
    write_xls(tmp_path / "2016-04.xls", {"A&E Data": sheet_rows("April 2016")})
    write_xlsx(tmp_path / "2019-04.xlsx", {"Provider Level Data": sheet_rows("April 2019", True)})
    write_xlsx(tmp_path / "2020-04.xlsx", {"Data": sheet_rows("April 2020")})
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "2016-04.xls"), str(tmp_path / "2019-04.xlsx"),
                                      str(tmp_path / "2020-04.xlsx"), "--source", "ae_returns",
                                      "--catalog", str(tmp_path / "catalog")])
    assert result.exit_code == 1, result.output
    lines = " ".join(result.output.split())
    assert ("2016-04.xls: 2 row(s) landed, 1 quarantined, 3 excluded by rule (sheet 'A&E Data', period title cell "
            "A&E Data!B2 beside 'Period:': 'April 2016')") in lines
    assert "2019-04.xlsx: 2 row(s) landed, 1 quarantined, 3 excluded by rule (sheet 'Provider Level Data'" in lines
    assert ("refused 2020-04.xlsx: unreadable_source — none of the sheets 'A&E Data', 'Provider Level Data' "
            "found (sheets: 'Data')") in lines
    assert "2 of 3 file(s) would be read, 1 refused" in lines


def test_row_map_round_trip():
    from pipelines.ingest.readers import row_map, sheet_row_of

    rows_ = [16, 17, 18, 20, 21, 40]  # blank rows at 19 and 22-39
    text = row_map(rows_)
    assert text == "1:16:3;4:20:2;6:40:1"
    assert [sheet_row_of(text, r) for r in range(1, 7)] == rows_
    assert sheet_row_of(text, 7) is None and sheet_row_of(None, 1) is None
