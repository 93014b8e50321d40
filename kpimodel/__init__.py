"""The KPI model shared by the pipeline stages and the alerts package (which imports neither
Dagster nor `pipelines`): the period model (periods: parsing, ends and labels for every
frequency) and how a figure is shown so that it never contradicts its status (display, with
the status rules mirrored from dbt). Pure Python, no dependencies."""
