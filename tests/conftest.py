import brian2
import pytest

brian2.prefs.codegen.target = "numpy"


@pytest.fixture(scope="session")
def paired():
    from bridge.app.paired import paired_run
    return paired_run
