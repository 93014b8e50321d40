"""kpiwatch commands of this stage, registered on the main CLI app by `register`."""
import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the kpiwatch CLI."""
