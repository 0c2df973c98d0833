"""Run the rules CLI standalone: ``python -m shared.rules``."""

from shared.rules.cli import rules_app

if __name__ == "__main__":
    rules_app()
