"""Second-order optimisation: line searches, Newton, (L-)BFGS, Gauss-Newton, LM.

Optax-style transforms (`optax.GradientTransformationExtraArgs`; update takes
`value=`, `grad=`, `value_fn=` keywords, or `residual_fn=` for the
least-squares ones) and two scipy-like drivers with jit-compiled loops:
`minimize(fun, x0, method=...)` and `least_squares(residual_fn, x0, method=...)`.
`OPTIMIZERS` (name -> factory; `methods`: which extra arguments each needs) is
merged into `optim.create`.
"""
from optim.second_order.bfgs import bfgs
from optim.second_order.bfgs import scale_by_bfgs
from optim.second_order.cg import conjugate_gradient
from optim.second_order.gauss_newton import gauss_newton
from optim.second_order.gradient_descent import gd_linesearch
from optim.second_order.gradient_descent import scale_by_steepest_descent
from optim.second_order.lbfgs import lbfgs
from optim.second_order.lbfgs import scale_by_lbfgs
from optim.second_order.lbfgs import two_loop
from optim.second_order.least_squares import least_squares
from optim.second_order.levenberg_marquardt import levenberg
from optim.second_order.levenberg_marquardt import levenberg_marquardt
from optim.second_order.linesearch import backtracking_linesearch
from optim.second_order.linesearch import exact_linesearch
from optim.second_order.linesearch import LINESEARCHES
from optim.second_order.linesearch import LineSearchState
from optim.second_order.linesearch import zoom_linesearch
from optim.second_order.methods import LEAST_SQUARES
from optim.second_order.methods import MINIMIZERS
from optim.second_order.methods import OPTIMIZERS
from optim.second_order.minimize import minimize
from optim.second_order.newton import newton
from optim.second_order.newton import scale_by_newton
from optim.second_order.newton_cg import newton_cg
from optim.second_order.newton_cg import scale_by_newton_cg
from optim.second_order.result import OptimizeResult


__all__ = [
    'newton', 'newton_cg', 'bfgs', 'lbfgs', 'gd_linesearch',
    'scale_by_newton', 'scale_by_newton_cg', 'scale_by_bfgs', 'scale_by_lbfgs',
    'scale_by_steepest_descent', 'two_loop', 'conjugate_gradient',
    'backtracking_linesearch', 'zoom_linesearch', 'exact_linesearch', 'LineSearchState',
    'LINESEARCHES',
    'gauss_newton', 'levenberg', 'levenberg_marquardt',
    'minimize', 'least_squares', 'OptimizeResult',
]
