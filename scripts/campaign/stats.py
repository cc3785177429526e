"""The arithmetic of the report card: binomial proportions with their Wilson
interval, nearest-rank percentiles, and a Poisson rate (false alarms per hour)
with its exact interval. Only the standard library: the campaign runs on a
fresh machine with python3 and nothing else."""
import math

Z95 = 1.959963984540054  # two-sided 95 %


def wilson(successes, trials, z=Z95):
    """(estimate, low, high) of a proportion, or None without trials.

    Wilson's score interval: unlike p +- z*sqrt(p(1-p)/n) it stays inside
    [0, 1] and does not collapse to a width of zero at 20/20, which is what a
    campaign of 20 injections per class mostly measures."""
    if trials <= 0:
        return None
    if successes < 0 or successes > trials:
        raise ValueError("successes %r out of 0..%r" % (successes, trials))
    n = float(trials)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # exact ends where the estimate sits on them (rounding would leave 0.9999...)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return p, low, high


def percentile(values, q):
    """Nearest-rank percentile (q in [0, 1]) of the values, or None when empty.

    No interpolation: the p99 of 20 latencies is the largest of them, a value
    that was really measured, which is the honest answer with few samples."""
    if not values:
        return None
    if not 0.0 <= q <= 1.0:
        raise ValueError("q %r out of [0, 1]" % q)
    v = sorted(values)
    rank = max(1, int(math.ceil(q * len(v) - 1e-9)))
    return v[min(rank, len(v)) - 1]


def _poisson_cdf(k, mu):
    """P(X <= k) for X ~ Poisson(mu), summed in log space (k is small here)."""
    if mu <= 0:
        return 1.0
    total = 0.0
    log_term = -mu  # log P(X = 0)
    for i in range(k + 1):
        if i > 0:
            log_term += math.log(mu) - math.log(i)
        total += math.exp(log_term)
    return min(1.0, total)


def _solve(f, lo, hi):
    """The root of an increasing-or-decreasing f on [lo, hi] by bisection."""
    flo = f(lo)
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if (f(mid) > 0) == (flo > 0):
            lo, flo = mid, f(mid)
        else:
            hi = mid
    return (lo + hi) / 2.0


def poisson_rate(events, seconds, per=3600.0, alpha=0.05):
    """(rate, low, high) of events per `per` seconds observed over `seconds`,
    with the exact (Garwood) interval; None without observation time.

    Zero false alarms in 10 minutes is not a rate of zero: the interval's upper
    end (about 22 per hour) says how little 10 minutes can rule out."""
    if seconds <= 0:
        return None
    if events < 0:
        raise ValueError("events %r < 0" % events)
    scale = per / float(seconds)
    # mu_low: P(X >= events | mu) = alpha/2; mu_high: P(X <= events | mu) = alpha/2
    if events == 0:
        mu_low = 0.0
    else:
        mu_low = _solve(lambda mu: (1.0 - _poisson_cdf(events - 1, mu)) - alpha / 2.0, 0.0, events + 50.0)
    hi_bound = events + 50.0 + 10.0 * math.sqrt(events + 1.0)
    mu_high = _solve(lambda mu: _poisson_cdf(events, mu) - alpha / 2.0, 0.0, hi_bound)
    return events * scale, mu_low * scale, mu_high * scale


def fmt_prop(w):
    """'0.95 [0.76, 0.99]' or 'n/a'."""
    if w is None:
        return "n/a"
    return "%.2f [%.2f, %.2f]" % w
