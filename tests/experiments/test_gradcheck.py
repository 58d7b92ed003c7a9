"""experiments.gradcheck: float64 centred differences agree with jax.grad on
registered models, and a wrong gradient is caught."""
import jax
import jax.numpy as jnp
import pytest

from experiments import gradcheck


def test_check_function_catches_a_wrong_gradient(x64):
  @jax.custom_vjp
  def f(w):
    return jnp.sum(jnp.tanh(w) ** 2)

  def fwd(w):
    return f(w), w

  def bwd(w, g):  # 1% too large: the kind of bug a gradient check exists for
    return (g * 1.01 * 2 * jnp.tanh(w) * (1 - jnp.tanh(w) ** 2),)

  f.defvjp(fwd, bwd)
  params = {'w': jnp.linspace(-1.0, 1.0, 6, dtype=jnp.float64)}
  bad = gradcheck.check_function(lambda p: f(p['w']), params)
  assert bad[0].max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-4)
  good = gradcheck.check_function(lambda p: jnp.sum(jnp.tanh(p['w']) ** 2), params)
  assert good[0].max_rel_error < 1e-8 and good[0].checked == 6


def test_registered_models_pass_in_float64(x64):
  reports, f32 = gradcheck.check_model('mlp', {'activation': 'tanh', 'width': 32},
                                       coords=12)
  assert [r.path for r in reports] == ['fc0/bias', 'fc0/kernel', 'fc1/bias', 'fc1/kernel',
                                       'head/bias', 'head/kernel']
  assert max(r.max_rel_error for r in reports) < 1e-7 and f32 == []


def test_cli_exit_codes(capsys):
  assert gradcheck.main(['gradcheck', '--model=not_a_model']) == 2
  assert 'Unknown model name' in capsys.readouterr().err
  assert gradcheck.main(['gradcheck', '--model=linear_classifier', '--coords=4']) == 0
  out = capsys.readouterr().out
  assert 'max relative error' in out and out.strip().endswith('PASS')
  assert 'head/kernel' in out and 'float32' not in out  # float64 end to end
  jax.config.update('jax_enable_x64', False)


def test_hessian_vector_product_check(x64):
  # L = Σ w⁴/4: H = diag(3w²), so Hv = 3w²v; a 2% error in the custom
  # gradient's derivative shows up in the second-order check only.
  params = {'w': jnp.linspace(-1.0, 1.0, 5, dtype=jnp.float64)}
  good = gradcheck.check_hvp(lambda p: jnp.sum(p['w'] ** 4) / 4, params)
  assert good[0].max_rel_error < 1e-8 and good[0].checked == 5

  @jax.custom_jvp
  def cube(w):
    return w ** 3

  cube.defjvp(lambda primals, tangents: (cube(primals[0]),
                                         3.06 * primals[0] ** 2 * tangents[0]))
  # ∇L = cube(w) exactly (first order right); its derivative is 2% too large.
  bad = gradcheck.check_hvp(lambda p: _integral_of(cube, p['w']), params)
  assert bad[0].max_rel_error == pytest.approx(0.06 / 3.06, rel=1e-3)


def _integral_of(cube, w):
  """A scalar whose gradient is cube(w): w⁴/4 with a custom VJP returning cube(w)."""
  @jax.custom_vjp
  def f(w):
    return jnp.sum(w ** 4) / 4

  f.defvjp(lambda w: (f(w), w), lambda w, g: (g * cube(w),))
  return f(w)


def test_model_second_order_and_flags(capsys):
  assert gradcheck.main(['gradcheck', '--model=mlp', '--override=activation=tanh',
                         '--override=width=8', '--coords=4']) == 0
  out = capsys.readouterr().out
  assert 'Hv:head/kernel' in out and out.strip().endswith('PASS')
  assert gradcheck.main(['gradcheck', '--model=mlp', '--nonsense=1']) == 2
  assert gradcheck.main(['gradcheck']) == 2
  assert '--model is required' in capsys.readouterr().err
  jax.config.update('jax_enable_x64', False)
