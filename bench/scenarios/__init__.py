"""One module per scenario of issue 7, each with ``async def run(ctx) -> ScenarioResult``."""
