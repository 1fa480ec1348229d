"""Helpers the test modules share: scripted models, TCP ports, tiny training configurations and
polling of asynchronous servers. Fixtures live in tests/conftest.py; what the benchmarks need
as well lives in the package (ghostwrite.server.client, ghostwrite.training.harness)."""
