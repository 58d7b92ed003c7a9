"""Fixtures for the model tests."""
import pytest

from vision import kernels


@pytest.fixture(params=['auto', 'portable'])
def kernel_mode(request):
  """Runs a test under each kernel mode: 'auto' (the tuned kernels on CPU) and
  'portable' (the spelling GPU/TPU run), so parity covers both code paths."""
  with kernels.use(request.param):
    yield request.param
