pytest_plugins = ["flotilla.common.testing"]
