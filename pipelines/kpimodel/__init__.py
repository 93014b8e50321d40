"""The KPI model shared by every stage that shows or judges a figure: how a figure is displayed
so that it never contradicts its status (display), and the status rules mirrored from dbt."""
