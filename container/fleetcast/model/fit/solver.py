"""The exact MAP fit of Prophet's Stan model, in process, for linear and flat growth.

Stan's objective (log density, no Jacobian, constants dropped), with s = sigma_obs:

    lp = -(k^2 + m^2)/50 - sum|delta|/tau - 2 s^2 - sum beta^2/(2 sigmas^2) - T log s - RSS/(2 s^2).

For a fixed s, multiplying the negative by s^2 leaves RSS/2 + ridge(k, m, beta) + (s^2/tau)*|delta|_1:
a lasso on the changepoint deltas with a ridge on the rest, convex, solved exactly here by an active-set
(feature-sign) method on the small Gram matrix. Given the residuals, s has a closed form
(4 s^4 + T s^2 - RSS = 0). The fit alternates the two until s is stationary, then checks the optimality
(KKT) conditions of the joint problem; multiplicative seasonality adds a third block (beta given the
trend, a ridge) to the alternation. Anything it cannot guarantee raises `NotConverged` or `NotCovered`,
and the caller falls back to Stan.
"""

from __future__ import annotations

import math

import numpy as np

from fleetcast.model.fit.problem import FLAT, LINEAR, FitParams, FitProblem

PRIOR_KM_VARIANCE = 25.0  # k, m ~ normal(0, 5)
SIGMA_PRIOR_SCALE = 0.5  # sigma_obs ~ normal(0, 0.5)
MAX_OUTER = 500
MAX_ACTIVE_SET_STEPS = 400
SIGMA_RTOL = 1e-13
KKT_RTOL = 1e-10


class NotCovered(Exception):  # noqa: N818 - the names the engine and the issue use
    """The problem uses a part of Prophet's model this solver does not fit (e.g. logistic growth)."""


class NotConverged(Exception):  # noqa: N818
    """The solver could not certify the optimum for this series."""


def trend_columns(problem: FitProblem) -> np.ndarray:
    """(T, 2+S) columns of the trend in (k, m, δ): t, 1 and (t - t_change_j)·1{t ≥ t_change_j}."""
    return _shared(problem, "trend_columns", lambda: _trend_design(problem))


def _trend_design(problem: FitProblem) -> np.ndarray:
    t = problem.t
    columns = np.zeros((len(t), 2 + len(problem.t_change)))
    columns[:, 1] = 1.0
    if problem.trend_indicator == LINEAR:
        columns[:, 0] = t
        active = t[:, None] >= problem.t_change[None, :]
        columns[:, 2:] = np.where(active, t[:, None] - problem.t_change[None, :], 0.0)
    return columns


def _shared(problem: FitProblem, name: str, build):
    """`build()` memoised in the problem's grid-wide cache (arrays derived from t, X and t_change only)."""
    value = problem.shared.get(name)
    if value is None:
        value = problem.shared[name] = build()
    return value


def log_posterior(problem: FitProblem, params: FitParams) -> float:
    """Stan's objective for optimizing (prophet.stan, `~` statements: constants dropped, no Jacobian)."""
    if problem.trend_indicator not in (LINEAR, FLAT):
        raise NotCovered(f"trend_indicator={problem.trend_indicator}")
    theta = np.concatenate(([params.k, params.m], params.delta))
    trend = trend_columns(problem) @ theta
    beta = np.asarray(params.beta, dtype=float)
    yhat = trend * (1.0 + problem.X @ (beta * problem.s_m)) + problem.X @ (beta * problem.s_a)
    sigma = float(params.sigma_obs)
    rss = float(np.sum((problem.y - yhat) ** 2))
    return float(
        -(params.k**2 + params.m**2) / (2 * PRIOR_KM_VARIANCE)
        - np.sum(np.abs(params.delta)) / problem.tau
        - 0.5 * (sigma / SIGMA_PRIOR_SCALE) ** 2
        - np.sum(beta**2 / (2 * problem.sigmas**2))
        - len(problem.y) * math.log(sigma)
        - rss / (2 * sigma**2)
    )


def sigma_given_rss(rss: float, rows: int) -> float:
    """The s > 0 maximising -T log s - RSS/(2 s^2) - 2 s^2: the positive root of 4s^4 + Ts^2 - RSS = 0."""
    # Written as 2·RSS / (T + sqrt(T² + 16·RSS)) to stay exact when RSS is tiny against T².
    square = 2.0 * rss / (rows + math.sqrt(rows * rows + 16.0 * rss))
    return math.sqrt(square)


def lasso_active_set(
    gram: np.ndarray, b: np.ndarray, ridge: np.ndarray, lam: float, pen: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """Exact minimiser of ½xᵀ(G + diag(ridge))x - bᵀx + lam·Σ_{pen}|x| (feature-sign search).

    Every step strictly lowers the objective and ends in a sign pattern whose restricted linear system was
    solved exactly, so the loop is finite; the result is returned only when its KKT conditions hold.
    """
    hessian = gram + np.diag(ridge)
    x = start.copy()
    n = len(x)
    scale = max(float(np.max(np.abs(b))), lam, 1e-300)
    tol = KKT_RTOL * scale
    unpenalized = ~pen
    for _ in range(MAX_ACTIVE_SET_STEPS):
        gradient = hessian @ x - b
        free = unpenalized | (x != 0.0)
        # A zero coefficient whose gradient exceeds the penalty enters, on the side that lowers the objective.
        violation = np.where(pen & ~free, np.abs(gradient) - lam, -np.inf)
        sign = np.sign(x)
        inner_ok = _inner_optimal(gradient, sign, free, pen, lam, tol)
        if inner_ok:
            worst = int(np.argmax(violation))
            if violation[worst] <= tol:
                return x
            free[worst] = True
            sign[worst] = -np.sign(gradient[worst])
        index = np.flatnonzero(free)
        try:
            target = np.linalg.solve(hessian[index][:, index], b[index] - lam * sign[index] * pen[index])
        except np.linalg.LinAlgError as exc:
            raise NotConverged(f"singular active-set system ({exc})") from None
        candidate = np.zeros(n)
        candidate[index] = target
        x = _best_on_segment(hessian, gradient, lam, pen, x, sign, candidate)
    raise NotConverged(f"lasso active set did not settle in {MAX_ACTIVE_SET_STEPS} steps")


def _inner_optimal(gradient, sign, free, pen, lam, tol) -> bool:
    residual = gradient + lam * sign * pen
    return bool(np.all(np.abs(residual[free]) <= tol))


def _best_on_segment(hessian, gradient, lam, pen, x, sign, candidate) -> np.ndarray:
    """The lowest point among the segment's end and the points where a penalised coefficient crosses 0.

    Along x + t*d the smooth part is f(x) + t*g.d + t^2/2 * d.H.d, so each point costs one L1 norm.
    """
    crossing = pen & (sign != 0.0) & (np.sign(candidate) != sign)
    if not crossing.any():
        return candidate  # the signs held: the restricted minimiser is the step (feature-sign search)
    d = candidate - x
    slope, curvature = float(gradient @ d), float(d @ (hessian @ d))
    where = np.flatnonzero(crossing)
    steps = np.concatenate(([0.0, 1.0], x[where] / (x[where] - candidate[where])))
    penalised = x[pen][None, :] + steps[:, None] * d[pen][None, :]
    values = slope * steps + 0.5 * curvature * steps**2 + lam * np.abs(penalised).sum(axis=1)
    # A crossing point's own coefficient is exactly zero there; the others are evaluated as they are.
    for row, i in enumerate(where, start=2):
        column = int(np.count_nonzero(pen[:i]))
        values[row] -= lam * abs(penalised[row, column])
    best = int(np.argmin(values))
    if best == 0:
        return x  # no progress on this segment; the next pass re-checks the KKT conditions
    point = x + steps[best] * d
    if best >= 2:
        point[where[best - 2]] = 0.0
    return point


def _prior_precisions(problem: FitProblem) -> tuple[np.ndarray, np.ndarray]:
    """Ridge weights (per unit sigma²) of the trend block (k, m, δ) and of β."""
    trend = np.zeros(2 + len(problem.t_change))
    trend[:2] = 1.0 / PRIOR_KM_VARIANCE
    return trend, 1.0 / problem.sigmas**2


def solve(problem: FitProblem, start: FitParams | None = None) -> FitParams:
    """Prophet's MAP parameters for `problem`, certified by the KKT conditions, or an exception.

    `start` (e.g. the holdout fit's solution, rescaled) only seeds the search: the answer is the same
    certified optimum with or without it.
    """
    if problem.trend_indicator not in (LINEAR, FLAT):
        raise NotCovered(f"growth with trend_indicator={problem.trend_indicator} (logistic) is fit by Stan")
    if not np.all(np.isfinite(problem.y)) or not np.all(np.isfinite(problem.X)):
        raise NotCovered("non-finite values in the Stan data")
    multiplicative = bool(np.any((problem.s_m != 0) & np.any(problem.X != 0, axis=0)))
    try:
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            if multiplicative:
                params = _solve_multiplicative(problem, start)
            else:
                params = _solve_additive(problem, start)
    except (np.linalg.LinAlgError, FloatingPointError) as exc:
        raise NotConverged(f"numerical failure ({type(exc).__name__}: {exc})") from None
    values = np.concatenate(([params.k, params.m, params.sigma_obs], params.delta, params.beta))
    if not np.all(np.isfinite(values)):
        raise NotConverged("non-finite parameters")
    return params


def _start_vector(problem: FitProblem, start: FitParams | None) -> tuple[np.ndarray | None, float | None]:
    """(k, m, delta, beta) and sigma from a starting point whose shapes fit this problem, else Nones."""
    if start is None or not start.sigma_obs > 0:
        return None, None
    if len(start.delta) != len(problem.t_change) or len(start.beta) != problem.X.shape[1]:
        return None, float(start.sigma_obs)
    vector = np.concatenate(([start.k, start.m], start.delta, start.beta))
    if not np.all(np.isfinite(vector)):
        return None, None
    return vector, float(start.sigma_obs)


def _solve_additive(problem: FitProblem, start: FitParams | None) -> FitParams:
    rows = len(problem.y)
    n_trend = 2 + len(problem.t_change)
    design, gram = _shared(problem, "additive_system", lambda: _additive_system(problem))
    b = design.T @ problem.y
    trend_w, beta_w = _prior_precisions(problem)
    weights = np.concatenate([trend_w, beta_w])
    pen = np.zeros(design.shape[1], dtype=bool)
    pen[2:n_trend] = True  # under flat growth the δ columns are zero: the lasso keeps δ at 0
    x, sigma = _start_vector(problem, start)
    x = np.zeros(design.shape[1]) if x is None else x
    sigma = sigma or _ridge_sigma(gram, b, weights, pen, problem.y, design)
    steps = _SigmaSteps()
    for _ in range(MAX_OUTER):
        x = lasso_active_set(gram, b, sigma**2 * weights, sigma**2 / problem.tau, pen, x)
        rss = float(np.sum((problem.y - design @ x) ** 2))
        updated = sigma_given_rss(rss, rows)
        if abs(updated - sigma) <= SIGMA_RTOL * sigma:
            sigma = updated
            break
        sigma = steps.next(sigma, updated)
    else:
        raise NotConverged(f"sigma_obs did not settle in {MAX_OUTER} rounds")
    if not sigma > 0:
        raise NotConverged("sigma_obs collapsed to 0 (a perfect fit)")
    # Certify the returned point: the lasso KKT conditions at the final sigma.
    lam = sigma**2 / problem.tau
    gradient = gram @ x + sigma**2 * weights * x - b
    _check_kkt(gradient, x, pen, lam, b)
    return _params(problem, x[:n_trend], x[n_trend:], sigma)


class _SigmaSteps:
    """The next sigma of the fixed-point iteration sigma <- g(sigma), Steffensen-accelerated.

    Plain iteration converges linearly; every second step jumps to Aitken's extrapolation of the last
    three iterates. Only where the loop stops matters (g(sigma) = sigma, then the KKT check), so a jump
    that misbehaves costs rounds, never correctness. g is only piecewise smooth (the lasso's active set
    changes with sigma), so the first jump that does not shrink the residual |g(sigma) - sigma| turns
    acceleration off for the rest of the solve.
    """

    def __init__(self) -> None:
        self._start: tuple[float, float] | None = None  # (sigma0, g(sigma0)) of the current pair
        self._residual_before_jump: float | None = None
        self._enabled = True

    def next(self, sigma: float, updated: float) -> float:
        residual = abs(updated - sigma)
        if self._residual_before_jump is not None:
            if residual >= self._residual_before_jump:
                self._enabled = False
            self._residual_before_jump = None
        if not self._enabled:
            return updated
        if self._start is None:
            self._start = (sigma, updated)
            return updated
        (s0, s1), s2 = self._start, updated
        self._start = None
        curvature = s2 - 2.0 * s1 + s0
        jump = s0 - (s1 - s0) ** 2 / curvature if curvature != 0.0 else s2
        if not (math.isfinite(jump) and jump > 0.0):
            return s2
        self._residual_before_jump = residual
        return jump


def _additive_system(problem: FitProblem) -> tuple[np.ndarray, np.ndarray]:
    design = np.hstack([trend_columns(problem), problem.X * problem.s_a[None, :]])
    return design, design.T @ design


def _ridge_sigma(gram, b, weights, pen, y, design) -> float:
    """A starting sigma: the residual scale of the fit without changepoint deltas (unit ridge weights)."""
    keep = np.flatnonzero(~pen)
    x = np.zeros(len(b))
    x[keep] = np.linalg.solve(gram[keep][:, keep] + np.diag(1e-4 * weights[keep]), b[keep])
    return max(sigma_given_rss(float(np.sum((y - design @ x) ** 2)), len(y)), 1e-6)


def _check_kkt(gradient, x, pen, lam, b) -> None:
    tol = KKT_RTOL * max(float(np.max(np.abs(b))), lam, 1e-300)
    smooth = np.where(pen, gradient + lam * np.sign(x), gradient)
    bad_free = np.abs(smooth[(~pen) | (x != 0)]) > tol
    bad_zero = np.abs(gradient[pen & (x == 0)]) > lam + tol
    if np.any(bad_free) or np.any(bad_zero):
        worst = float(np.max(np.abs(smooth[(~pen) | (x != 0)]), initial=0.0))
        raise NotConverged(f"KKT conditions not met (largest stationarity residual {worst:.3g})")


def _params(problem: FitProblem, trend: np.ndarray, beta: np.ndarray, sigma: float) -> FitParams:
    if problem.trend_indicator == FLAT:
        trend = trend.copy()
        trend[0] = 0.0
        trend[2:] = 0.0
    return FitParams(k=float(trend[0]), m=float(trend[1]), delta=trend[2:].copy(), beta=beta, sigma_obs=sigma)


def _solve_multiplicative(problem: FitProblem, start: FitParams | None) -> FitParams:
    """Block coordinate ascent: (trend, additive β) by the exact lasso, multiplicative β by ridge, then sigma.

    The objective is biconvex in the trend and the multiplicative β; the loop stops when a full round
    changes neither block nor sigma, and the joint KKT conditions are checked at the returned point.
    """
    rows = len(problem.y)
    y = problem.y
    n_trend = 2 + len(problem.t_change)
    trend_cols = trend_columns(problem)
    xa = problem.X * problem.s_a[None, :]
    xm = problem.X * problem.s_m[None, :]
    trend_w, beta_w = _prior_precisions(problem)
    weights_1 = np.concatenate([trend_w, beta_w])  # zero columns (multiplicative β) stay 0
    pen = np.zeros(n_trend + problem.X.shape[1], dtype=bool)
    pen[2:n_trend] = True
    is_m = problem.s_m != 0
    beta_m = np.zeros(problem.X.shape[1])
    x1 = np.zeros(len(pen))
    _, seed_sigma = _start_vector(problem, start)
    sigma = seed_sigma or 0.0
    for rounds in range(MAX_OUTER):
        scale = 1.0 + xm @ beta_m
        design = np.hstack([trend_cols * scale[:, None], xa])
        gram = design.T @ design
        b = design.T @ y
        if not sigma:
            sigma = _ridge_sigma(gram, b, weights_1, pen, y, design)
        x1 = lasso_active_set(gram, b, sigma**2 * weights_1, sigma**2 / problem.tau, pen, x1)
        trend = trend_cols @ x1[:n_trend]
        target = y - trend - xa @ x1[n_trend:]
        zm = (trend[:, None] * xm)[:, is_m]
        precision = zm.T @ zm + np.diag(sigma**2 * beta_w[is_m])
        new_m = np.zeros_like(beta_m)
        new_m[is_m] = np.linalg.solve(precision, zm.T @ target)
        yhat = trend * (1.0 + xm @ new_m) + xa @ x1[n_trend:]
        updated = sigma_given_rss(float(np.sum((y - yhat) ** 2)), rows)
        moved = float(np.max(np.abs(new_m - beta_m), initial=0.0))
        beta_m = new_m
        steady = abs(updated - sigma) <= SIGMA_RTOL * sigma and moved <= 1e-12 * (1 + np.max(np.abs(beta_m)))
        sigma = updated
        if steady and rounds > 0:
            break
    else:
        raise NotConverged(f"multiplicative refinement did not settle in {MAX_OUTER} rounds")
    # Certify: the full gradient of ½RSS + ridge at the final point, all blocks at once.
    scale = 1.0 + xm @ beta_m
    design = np.hstack([trend_cols * scale[:, None], xa])
    trend = trend_cols @ x1[:n_trend]
    residual = y - (trend * scale + xa @ x1[n_trend:])
    lam = sigma**2 / problem.tau
    gradient_1 = -(design.T @ residual) + sigma**2 * weights_1 * x1
    _check_kkt(gradient_1, x1, pen, lam, design.T @ y)
    zm = trend[:, None] * xm
    gradient_m = (-(zm.T @ residual) + sigma**2 * beta_w * beta_m)[is_m]
    if np.any(np.abs(gradient_m) > KKT_RTOL * max(float(np.max(np.abs(zm.T @ y))), 1.0)):
        raise NotConverged("KKT conditions not met for the multiplicative coefficients")
    beta = x1[n_trend:] + beta_m
    return _params(problem, x1[:n_trend], beta, sigma)
