"""Unit tests of the campaign's arithmetic (scripts/campaign/stats.py):
the Wilson interval, nearest-rank percentiles and the Poisson rate interval,
against values computed by hand or published tables."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))

from campaign import stats  # noqa: E402


class Wilson(unittest.TestCase):
    def test_all_successes_of_twenty(self):
        p, lo, hi = stats.wilson(20, 20)
        self.assertEqual(p, 1.0)
        self.assertEqual(hi, 1.0)
        # n / (n + z^2) = 20 / 23.8415: the lower bound a 20/20 class can claim
        self.assertAlmostEqual(lo, 0.8389, places=4)

    def test_nineteen_of_twenty(self):
        p, lo, hi = stats.wilson(19, 20)
        self.assertAlmostEqual(p, 0.95)
        self.assertAlmostEqual(lo, 0.7639, places=4)
        self.assertAlmostEqual(hi, 0.9911, places=4)

    def test_half_is_symmetric(self):
        p, lo, hi = stats.wilson(10, 20)
        self.assertAlmostEqual(p - lo, hi - p, places=12)
        self.assertAlmostEqual(lo, 0.2993, places=4)

    def test_zero_successes(self):
        p, lo, hi = stats.wilson(0, 20)
        self.assertEqual((p, lo), (0.0, 0.0))
        self.assertAlmostEqual(hi, 0.1611, places=4)

    def test_no_trials_is_none(self):
        self.assertIsNone(stats.wilson(0, 0))

    def test_bounds_stay_inside_and_order(self):
        for n in (1, 2, 3, 5, 20, 100):
            for k in range(n + 1):
                p, lo, hi = stats.wilson(k, n)
                self.assertTrue(0.0 <= lo <= p <= hi <= 1.0, (k, n, lo, p, hi))

    def test_more_trials_narrow_the_interval(self):
        _, lo20, _ = stats.wilson(20, 20)
        _, lo60, _ = stats.wilson(60, 60)
        self.assertGreater(lo60, lo20)

    def test_impossible_counts_raise(self):
        with self.assertRaises(ValueError):
            stats.wilson(21, 20)

    def test_format(self):
        self.assertEqual(stats.fmt_prop(stats.wilson(19, 20)), "0.95 [0.76, 0.99]")
        self.assertEqual(stats.fmt_prop(None), "n/a")


class Percentile(unittest.TestCase):
    def test_nearest_rank(self):
        v = list(range(1, 21))  # 1..20
        self.assertEqual(stats.percentile(v, 0.5), 10)
        self.assertEqual(stats.percentile(v, 0.99), 20)  # the largest of 20: measured, not interpolated
        self.assertEqual(stats.percentile(v, 0.95), 19)
        self.assertEqual(stats.percentile(v, 0.0), 1)
        self.assertEqual(stats.percentile(v, 1.0), 20)

    def test_order_does_not_matter(self):
        self.assertEqual(stats.percentile([30, 10, 20], 0.5), 20)

    def test_one_value(self):
        self.assertEqual(stats.percentile([7.5], 0.5), 7.5)
        self.assertEqual(stats.percentile([7.5], 0.99), 7.5)

    def test_hundred_values(self):
        v = list(range(100))
        self.assertEqual(stats.percentile(v, 0.99), 98)
        self.assertEqual(stats.percentile(v, 0.5), 49)

    def test_empty_is_none(self):
        self.assertIsNone(stats.percentile([], 0.5))

    def test_bad_q_raises(self):
        with self.assertRaises(ValueError):
            stats.percentile([1], 99)


class PoissonRate(unittest.TestCase):
    def test_zero_events_in_an_hour(self):
        rate, lo, hi = stats.poisson_rate(0, 3600)
        self.assertEqual((rate, lo), (0.0, 0.0))
        self.assertAlmostEqual(hi, 3.6889, places=3)  # -ln(0.025)

    def test_zero_events_in_ten_minutes(self):
        _, _, hi = stats.poisson_rate(0, 600)
        self.assertAlmostEqual(hi, 6 * 3.6889, places=2)

    def test_garwood_table_values(self):
        # exact 95 % limits for 1 and 5 observed events (Garwood 1936)
        _, lo, hi = stats.poisson_rate(1, 3600)
        self.assertAlmostEqual(lo, 0.0253, places=3)
        self.assertAlmostEqual(hi, 5.5716, places=3)
        rate, lo, hi = stats.poisson_rate(5, 3600)
        self.assertEqual(rate, 5.0)
        self.assertAlmostEqual(lo, 1.6235, places=3)
        self.assertAlmostEqual(hi, 11.6683, places=3)

    def test_rate_scales_with_time(self):
        rate, _, _ = stats.poisson_rate(2, 1800)
        self.assertAlmostEqual(rate, 4.0)

    def test_no_time_is_none(self):
        self.assertIsNone(stats.poisson_rate(0, 0))


if __name__ == "__main__":
    unittest.main()
