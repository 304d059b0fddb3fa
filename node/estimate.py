"""Exhaustion estimate: how big a topic is and how much of it is still undiscovered.

Every item a model generates, duplicate or not, is a sample of the topic. How often the
entries seen so far repeat tells how much is left, the way an ecologist estimates the number
of species from how many were caught once or twice (KnowSum, arXiv 2506.02058, applies the
same estimators to what an LLM knows). With ``f_k`` the number of entries seen exactly ``k``
times, ``n`` the number of samples and ``S_obs`` the number of distinct entries:

- **Chao1** (Chao 1984, "Nonparametric estimation of the number of classes in a population",
  Scand. J. Statist. 11:265–270) bounds the number of unseen entries from below by
  ``f1² / (2 f2)``: rare entries show up as singletons, and doubletons say how rare "rare"
  is. We use the bias-corrected form, which is finite when ``f2 = 0``::

      S_chao1 = S_obs + ((n − 1) / n) · f1 (f1 − 1) / (2 (f2 + 1))

  Its variance is the bias-corrected formula of the EstimateS user guide (Colwell), as in
  Anne Chao's SpadeR (``Chao1_bc``), with ``A = (n − 1)/n``::

      var = A f1(f1−1) / (2(f2+1)) + A² f1(2f1−1)² / (4(f2+1)²) + A² f1² f2 (f1−1)² / (4(f2+1)⁴)

  The interval is Chao's (1987, "Estimating the population size for capture-recapture data
  with unequal catchability", Biometrics 43:783–791) log-normal one on the unseen part
  ``T = S_chao1 − S_obs``: ``[S_obs + T/K, S_obs + T·K]`` with
  ``K = exp(z · sqrt(ln(1 + var/T²)))``, so the lower bound is never below ``S_obs``. When
  ``T = 0`` (at most one singleton) that interval collapses to a point; like SpadeR we then
  use the interval built on the variance of ``S_obs`` itself, with ``P = Σ f_k e^(−k) / S_obs``
  the estimated chance that an observed entry could have been missed:
  ``[max(S_obs, S_obs/(1−P) − z·sd/(1−P)), S_obs/(1−P) + z·sd/(1−P)]``.
  Lower bounds are rounded down to a whole entry: the size is an integer, and near exhaustion
  the log-normal bound exceeds ``S_obs`` by a fraction of an entry, excluding a truth of
  ``S_obs`` (measured: uniform population of 200, 1,000 samples, the interval held the truth
  in 70% of runs unrounded, 98% rounded). Upper bounds stay continuous so a stop rule can
  compare them with a threshold below one entry.
- **Sample coverage** (Good 1953, "The population frequencies of species and the estimation
  of population parameters", Biometrika 40:237–264, after Turing: the next sample is new with
  probability about ``f1 / n``), in the improved form of Chao & Jost 2012 ("Coverage-based
  rarefaction and extrapolation", Ecology 93:2533–2547)::

      Ĉ = 1 − (f1/n) · (n−1) f1 / ((n−1) f1 + 2 f2)            (f2 > 0)
      Ĉ = 1 − (f1/n) · (n−1)(f1−1) / ((n−1)(f1−1) + 2)          (f2 = 0)

  It is the share of the *generation* probability already discovered, not the share of
  entries: popular entries weigh more. ``1 − Ĉ`` is the undiscovered share.

**The bias of our prompts.** The estimators assume independent samples. Our prompts list the
known entries and ask the model not to repeat them, so repeats are suppressed: after an
entry is discovered, each further draw of it is dropped with some probability ``s`` (and the
model draws again). This is capture–recapture's "trap-shy" behavioural response (model M_b of
Otis et al. 1978, "Statistical inference from capture data on closed animal populations").
Fewer repeats mean fewer doubletons, so raw Chao1 overestimates what remains, and its interval
is mis-calibrated. The hook ``repeat_suppression = s`` undoes the thinning of repeats before
the formulas: a rare entry's single repeat survives with probability ``1 − s``, so::

    f2' = f2 / (1 − s),   n' = S_obs + (n − S_obs) / (1 − s),   f1' = f1

``f1`` is deliberately left alone. To first order a suppressed doubleton also *adds* a
singleton (``f1' = f1 − s·f2'``), but on simulated populations (200 entries, uniform and Zipf,
150–600 samples, s = 0.6) that fuller correction overcorrects toward ``S_obs``: its interval
held the truth in 0–52% of runs, against 47–94% for the ``f2``-only one, whose mean estimate
was mostly within 10% of the truth. Probably the thinning of tripletons and above into
doubletons and singletons, which the first order ignores, offsets the ``f1`` term; the exact
inversion of a binomial thinning is an alternating series in f3, f4…, unstable on real counts.
``s = 0`` is the plain estimator; ``s`` is to be calibrated on the
simulator by measuring how often the interval holds the truth.
Rejected alternative: estimate only from items that were *not* in the prompt's known list.
Those samples are unbiased, but with partitioning nearly every known entry fits the prompt,
so almost no repeat would be left to estimate from; it would also need the prompt contents of
every call in its observation record.

**Per partition and overall.** Partitions are sampled with very different effort (one
exhausted, another just opened), and pooling such samples makes the abundances heterogeneous,
the case where Chao1 is most biased low. So the topic is estimated stratified: Chao1 per
partition, the unseen parts summed (and their variances, the partitions' calls being
independent), and the overall interval is Chao's log-normal one on that sum. The overall
observed count is the number of distinct entries across partitions, so an entry seen in two
partitions (a stray) is counted once as seen.

**What the estimate is for, measured (issue #6).** The quantity a user deciding "is it worth
continuing?" needs is *how many real entries more calls would still add* — inventions are not
entries of the topic, and an item the model would produce once in a million calls is not one
more calls will find. We define it with a horizon: **the real entries that as many calls
again as were made so far would add under the same prompting** (the doubling horizon: the
range over which species-accumulation extrapolation is trusted, Shen, Chao & Lin 2003,
"Predicting the number of new species in further taxonomic sampling", Ecology 84:798–804;
Chao et al. 2014, Ecol. Monogr. 84:45–67). The simulator knows that truth (its universe tells
real items from inventions; the run, continued, says what it found), and
``scripts/bench/estimator.py`` scores estimates against it. Measured there: the Chao1
remaining above almost never holds it (0–3% of checkpoints per group) and, against the items
the model can produce at all, holds the truth in 0–27%: inventions are singletons (a quarter of a dry
leaf's answer), and a split or retired partition keeps its singletons, so per-partition Chao1
sums run 3–34× (medians) above what more calls find, while whole-topic prompting leaves a tail that no
sample shows. ``node.forecast.discovery_forecast`` is the candidate that estimates the defined
quantity directly from the discovery curve; its measured coverage, before and after the
empirical calibration of ``spread``, is in docs/benchmarks.md ("Exhaustion estimate"). The
node shows the plan-aware Chao1 below and stops on it (whole topic, where it is plain
stratified Chao1) or on its planner (partitioned): see that section for its measured
coverage, and for why the forecast is not wired in.

**Plan-aware (issue #6).** That estimand is about *calls*, and with partitioning the planner
decides where calls go: only to the plan's live leaves. A retired leaf will never be called
again, and a split partition's calls now go to its children, which estimate what they still
hold from their own samples. So ``combine_open_groups`` counts the unseen part (Chao1's
``f1²/2f2`` term) only for groups still open to calls; a closed group contributes what it
observed and nothing unseen (``closed_group``). Its singletons are real evidence that the
partition holds more than was seen, but not of anything *more calls* will find there: summed
regardless, they kept the remaining estimate far above the truth long after the planner had
closed their partitions (``scripts/bench/estimator.py`` measures both). Without partitioning
the whole topic is the one live group, and the estimate is exactly the stratified Chao1 above.
A live leaf without any sample yet (a fresh child) adds nothing until its first call, as before.
Measured (docs/benchmarks.md, "Exhaustion estimate"): on partitioned runs its centre is nearer
the truth than the all-partitions sum at every checkpoint, the median ratio to the truth halves
(33× → 18× held out), and after the last leaf retires it says 0 where the sum said hundreds;
it is still far above the truth, largely because inventions are singletons in live leaves.

Everything here is a pure function of counts: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from types import MappingProxyType

from node.errors import ConfigError

__all__ = [
    "SizeEstimate",
    "StopDecision",
    "StopRule",
    "TopicEstimate",
    "abundance_frequencies",
    "chao1",
    "closed_group",
    "combine_groups",
    "combine_open_groups",
    "estimate_by_group",
    "estimate_topic",
    "good_turing_coverage",
    "should_stop",
    "undiscovered_share",
]

DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True, kw_only=True)
class SizeEstimate:
    """The estimated size of a (sub-)topic from its samples, with a confidence interval."""

    observed: int  # S_obs: distinct entries seen
    samples: int  # n: generated items, duplicates included
    f1: int  # entries seen exactly once
    f2: int  # entries seen exactly twice
    estimate: float  # estimated total number of entries (seen + unseen)
    variance: float  # variance of ``estimate``
    low: float  # lower bound of the interval, never below ``observed``
    high: float  # upper bound of the interval (inf when nothing is known yet)
    coverage: float  # estimated share of the generation probability already discovered
    confidence: float = DEFAULT_CONFIDENCE  # level of the [low, high] interval
    repeat_suppression: float = 0.0  # the correction applied (see module docstring)

    @property
    def remaining(self) -> float:
        """Estimated number of entries not yet discovered."""
        return self.estimate - self.observed

    @property
    def remaining_low(self) -> float:
        """Lower bound of the undiscovered entries."""
        return self.low - self.observed

    @property
    def remaining_high(self) -> float:
        """Upper bound of the undiscovered entries: what a stop rule should compare."""
        return self.high - self.observed

    @property
    def undiscovered_share(self) -> float:
        """Estimated chance that the next (unsuppressed) sample is a new entry."""
        return 1.0 - self.coverage

    def __str__(self) -> str:
        high = "∞" if math.isinf(self.high) else f"{self.high:.0f}"
        return (
            f"≈ {self.estimate:.0f} ({self.confidence * 100:g}% {self.low:.0f}–{high}), "
            f"{self.coverage * 100:.1f}% covered"
        )


def abundance_frequencies(counts: Iterable[int]) -> dict[int, int]:
    """f_k: how many entries were seen exactly k times (k ≥ 1), in increasing k.

    ``counts`` holds one count per entry; zero counts (entries never seen) are ignored.
    """
    frequencies = Counter(count for count in _checked_counts(counts) if count > 0)
    return dict(sorted(frequencies.items()))


def chao1(
    counts: Iterable[int],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    repeat_suppression: float = 0.0,
) -> SizeEstimate:
    """Bias-corrected Chao1 size estimate, its variance and log-normal interval.

    ``counts`` holds one count per entry seen (zeros are ignored). ``repeat_suppression``
    is the probability ``s`` that the model drops a repeat of a known entry (0 = independent
    sampling); see the module docstring for the correction it applies. With no samples the
    estimate is 0 and the upper bound infinite: nothing is known, so nothing may stop.
    """
    z = _z_score(confidence)
    _check_suppression(repeat_suppression)
    abundances = [count for count in _checked_counts(counts) if count > 0]
    observed = len(abundances)
    samples = sum(abundances)
    f1 = sum(1 for count in abundances if count == 1)
    f2 = sum(1 for count in abundances if count == 2)

    def result(
        estimate: float, variance: float, low: float, high: float, coverage: float
    ) -> SizeEstimate:
        return SizeEstimate(
            observed=observed,
            samples=samples,
            f1=f1,
            f2=f2,
            estimate=estimate,
            variance=variance,
            low=low,
            high=high,
            coverage=coverage,
            confidence=confidence,
            repeat_suppression=repeat_suppression,
        )

    if samples == 0:
        return result(0.0, math.inf, 0.0, math.inf, 0.0)
    f1_u, f2_u, n_u = _unthinned(f1, f2, observed, samples, repeat_suppression)
    coverage = _coverage(f1_u, f2_u, n_u)
    a = (n_u - 1.0) / n_u  # 0 with a single sample: one draw says nothing about repeats
    unseen = a * f1_u * (f1_u - 1.0) / (2.0 * (f2_u + 1.0))
    if unseen <= 0.0:
        low, high, variance = _interval_without_unseen(abundances, samples, z)
        return result(float(observed), variance, low, high, coverage)
    g = f2_u + 1.0
    variance = (
        a * f1_u * (f1_u - 1.0) / (2.0 * g)
        + a * a * f1_u * (2.0 * f1_u - 1.0) ** 2 / (4.0 * g**2)
        + a * a * f1_u**2 * f2_u * (f1_u - 1.0) ** 2 / (4.0 * g**4)
    )
    low, high = _lognormal_interval(observed, unseen, variance, z)
    return result(observed + unseen, variance, low, high, coverage)


def good_turing_coverage(counts: Iterable[int], *, repeat_suppression: float = 0.0) -> float:
    """Sample coverage (Chao & Jost 2012): the discovered share of the generation probability.

    0.0 when nothing was sampled. With a single sample the improved form is 0/0 and Turing's
    ``1 − f1/n`` (= 0) is used.
    """
    _check_suppression(repeat_suppression)
    abundances = [count for count in _checked_counts(counts) if count > 0]
    samples = sum(abundances)
    if samples == 0:
        return 0.0
    f1 = sum(1 for count in abundances if count == 1)
    f2 = sum(1 for count in abundances if count == 2)
    return _coverage(*_unthinned(f1, f2, len(abundances), samples, repeat_suppression))


def undiscovered_share(counts: Iterable[int], *, repeat_suppression: float = 0.0) -> float:
    """1 − coverage: the chance that the next unsuppressed sample is a new entry."""
    return 1.0 - good_turing_coverage(counts, repeat_suppression=repeat_suppression)


def estimate_by_group(
    samples: Iterable[tuple[str, str]],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    repeat_suppression: float = 0.0,
) -> dict[str, SizeEstimate]:
    """Chao1 per group (partition) from a stream of ``(group, entry_id)`` samples."""
    counts = _count_by_group(samples)
    return {
        group: chao1(
            entry_counts.values(),
            confidence=confidence,
            repeat_suppression=repeat_suppression,
        )
        for group, entry_counts in sorted(counts.items())
    }


def combine_groups(
    by_group: Mapping[str, SizeEstimate],
    *,
    distinct_observed: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> SizeEstimate:
    """The overall estimate of a stratified topic: the groups' unseen parts summed.

    ``distinct_observed`` is the number of distinct entries across all groups (an entry seen
    in two groups counts once); by default the groups are taken as disjoint. The unseen
    parts and their variances add (the groups are sampled by independent calls) and the
    interval is Chao's log-normal one on the summed unseen part. When no group has an unseen
    part the groups' own upper margins are summed, a conservative combination. ``coverage``
    is the groups' coverage weighted by their samples: the chance that the next sample,
    drawn with the same mix of effort, is already known.
    """
    z = _z_score(confidence)
    estimates = list(by_group.values())
    observed = (
        sum(e.observed for e in estimates) if distinct_observed is None else distinct_observed
    )
    samples = sum(e.samples for e in estimates)
    unseen = sum(e.remaining for e in estimates)
    variance = sum(e.variance for e in estimates)
    if samples == 0:
        coverage, low, high, variance = 0.0, 0.0, math.inf, math.inf
    else:
        coverage = sum(e.samples * e.coverage for e in estimates) / samples
        if unseen > 0.0:
            low, high = _lognormal_interval(observed, unseen, variance, z)
        else:
            low, high = float(observed), observed + sum(e.remaining_high for e in estimates)
    return SizeEstimate(
        observed=observed,
        samples=samples,
        f1=sum(e.f1 for e in estimates),
        f2=sum(e.f2 for e in estimates),
        estimate=observed + unseen,
        variance=variance,
        low=low,
        high=high,
        coverage=coverage,
        confidence=confidence,
        # Groups normally share one calibrated value; report the strongest one applied.
        repeat_suppression=max((e.repeat_suppression for e in estimates), default=0.0),
    )


def closed_group(estimate: SizeEstimate) -> SizeEstimate:
    """A group no call will sample again (retired, split, off the plan): what it observed, nothing unseen.

    Its counts (``samples``, ``f1``, ``f2``) stay as they were; its estimate, interval and
    variance collapse onto ``observed``, and its coverage is 1: no further call will draw from
    it, so nothing undiscovered is left there *for more calls* (the estimand, module docstring).
    """
    observed = float(estimate.observed)
    return replace(estimate, estimate=observed, variance=0.0, low=observed, high=observed, coverage=1.0)


def combine_open_groups(
    by_group: Mapping[str, SizeEstimate],
    *,
    open_groups: Container[str],
    distinct_observed: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> SizeEstimate:
    """``combine_groups`` where only the groups in ``open_groups`` (the plan's live leaves) count unseen entries.

    Every other group is a ``closed_group``: it adds its observed entries and samples, no unseen
    part, no variance. When every group is open this is ``combine_groups`` exactly; when none
    is, the estimate is what was observed and the upper bound too.
    """
    return combine_groups(
        {group: estimate if group in open_groups else closed_group(estimate) for group, estimate in by_group.items()},
        distinct_observed=distinct_observed,
        confidence=confidence,
    )


@dataclass(frozen=True, slots=True)
class TopicEstimate:
    """Per-group estimates and the overall one, as shown on the page and used to stop."""

    groups: Mapping[str, SizeEstimate]  # read-only, sorted by group name
    overall: SizeEstimate

    def __repr__(self) -> str:
        return f"<TopicEstimate groups={len(self.groups)} overall={self.overall}>"


def estimate_topic(
    samples: Iterable[tuple[str, str]],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    repeat_suppression: float = 0.0,
) -> TopicEstimate:
    """Estimate every group and the whole topic from one ``(group, entry_id)`` stream."""
    counts = _count_by_group(samples)
    groups = {
        group: chao1(
            entry_counts.values(),
            confidence=confidence,
            repeat_suppression=repeat_suppression,
        )
        for group, entry_counts in sorted(counts.items())
    }
    distinct = len({entry for entry_counts in counts.values() for entry in entry_counts})
    overall = combine_groups(groups, distinct_observed=distinct, confidence=confidence)
    return TopicEstimate(MappingProxyType(groups), overall)


@dataclass(frozen=True, slots=True)
class StopDecision:
    """Whether to stop generating, and why (shown in logs and on the page)."""

    stop: bool
    reason: str


@dataclass(frozen=True, kw_only=True)
class StopRule:
    """When a producer stops asking for more of a topic or partition."""

    # Stop once the upper bound of the undiscovered entries is below this. The upper bound,
    # not the estimate, so a noisy estimate does not stop us early; larger stops sooner.
    remaining_threshold: float = 1.0
    # Stop once the mean number of new entries per call over the last ``window`` calls is
    # below this: the model has run dry whatever the estimate says (it overestimates when
    # the prompt suppresses repeats).
    min_yield: float = 1.0
    # Calls averaged for ``min_yield``; longer is steadier but reacts later.
    window: int = 5
    # LLM calls allowed in all (0 = no budget).
    max_calls: int = 0

    def __post_init__(self) -> None:
        if not self.remaining_threshold >= 0.0:
            raise ConfigError(f"remaining_threshold must be ≥ 0, got {self.remaining_threshold!r}")
        if not self.min_yield >= 0.0:
            raise ConfigError(f"min_yield must be ≥ 0, got {self.min_yield!r}")
        if self.window < 1:
            raise ConfigError(f"window must be ≥ 1 call, got {self.window!r}")
        if self.max_calls < 0:
            raise ConfigError(f"max_calls must be ≥ 0 (0 = no budget), got {self.max_calls!r}")

    def decide(
        self, estimate: SizeEstimate, recent_new_per_call: Sequence[float], *, calls_made: int = 0
    ) -> StopDecision:
        """Apply this rule: see ``should_stop``."""
        return should_stop(
            estimate,
            recent_new_per_call,
            remaining_threshold=self.remaining_threshold,
            min_yield=self.min_yield,
            window=self.window,
            calls_made=calls_made,
            max_calls=self.max_calls,
        )


def should_stop(
    estimate: SizeEstimate,
    recent_new_per_call: Sequence[float],
    *,
    remaining_threshold: float,
    min_yield: float = 1.0,
    window: int = 5,
    calls_made: int = 0,
    max_calls: int = 0,
) -> StopDecision:
    """Stop when the call budget is spent, the remaining entries' upper bound is below
    ``remaining_threshold``, or the last ``window`` calls found fewer than ``min_yield``
    new entries each on average.

    ``recent_new_per_call`` is the number of new entries of each call, oldest first; the
    yield test waits until ``window`` calls were made. ``max_calls = 0`` means no budget.
    """
    if max_calls > 0 and calls_made >= max_calls:
        return StopDecision(True, f"call budget spent ({calls_made}/{max_calls} calls)")
    if estimate.remaining_high < remaining_threshold:
        return StopDecision(
            True,
            f"exhausted: at most {estimate.remaining_high:.1f} entries remain "
            f"(< {remaining_threshold:g}); {estimate}",
        )
    if window >= 1 and len(recent_new_per_call) >= window:
        mean_yield = sum(recent_new_per_call[-window:]) / window
        if mean_yield < min_yield:
            return StopDecision(
                True,
                f"dry: {mean_yield:.2f} new entries per call over the last {window} calls "
                f"(< {min_yield:g})",
            )
    return StopDecision(False, f"continue: up to {estimate.remaining_high:.0f} remain; {estimate}")


def _checked_counts(counts: Iterable[int]) -> Iterable[int]:
    for count in counts:
        if count < 0:
            raise ValueError(f"an abundance count cannot be negative, got {count!r}")
        yield count


def _check_suppression(repeat_suppression: float) -> None:
    if not 0.0 <= repeat_suppression < 1.0:
        raise ValueError(f"repeat_suppression must be in [0, 1), got {repeat_suppression!r}")


def _z_score(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _unthinned(
    f1: int, f2: int, observed: int, samples: int, repeat_suppression: float
) -> tuple[float, float, float]:
    """f1, f2 and n with suppressed repeats restored (see the module docstring)."""
    keep = 1.0 - repeat_suppression
    return float(f1), f2 / keep, observed + (samples - observed) / keep


def _coverage(f1: float, f2: float, samples: float) -> float:
    if samples <= 1.0:
        # One sample: the improved form is 0/0; Turing's 1 - f1/n.
        return max(0.0, 1.0 - f1 / samples)
    if f1 == 0.0:  # no singletons: nothing points to anything unseen (and the f2 = 0 form is 0/0)
        return 1.0
    if f2 > 0.0:
        missing = (samples - 1.0) * f1 / ((samples - 1.0) * f1 + 2.0 * f2)
    else:
        missing = (samples - 1.0) * (f1 - 1.0) / ((samples - 1.0) * (f1 - 1.0) + 2.0)
    return min(1.0, max(0.0, 1.0 - f1 / samples * max(missing, 0.0)))


def _lognormal_interval(
    observed: int, unseen: float, variance: float, z: float
) -> tuple[float, float]:
    """Chao's (1987) interval: log-normal on the unseen part, so low ≥ observed."""
    k = math.exp(z * math.sqrt(math.log1p(variance / unseen**2)))
    return _whole_entries_low(observed + unseen / k, observed), observed + unseen * k


def _whole_entries_low(low: float, observed: int) -> float:
    """Round a lower bound down to a whole entry, never below what was observed."""
    return float(max(observed, math.floor(low)))


def _interval_without_unseen(
    abundances: Sequence[int], samples: int, z: float
) -> tuple[float, float, float]:
    """Interval when Chao1 sees nothing unseen: from the variance of S_obs (SpadeR)."""
    frequencies = Counter(abundances)
    missed = sum(f * math.exp(-k) for k, f in frequencies.items())
    variance = sum(f * (math.exp(-k) - math.exp(-2 * k)) for k, f in frequencies.items())
    variance -= sum(k * math.exp(-k) * f for k, f in frequencies.items()) ** 2 / samples
    variance = max(variance, 0.0)
    observed = len(abundances)
    p_missed = missed / observed  # ≤ e^-1: each observed entry was seen at least once
    centre = observed / (1.0 - p_missed)
    margin = z * math.sqrt(variance) / (1.0 - p_missed)
    return _whole_entries_low(centre - margin, observed), centre + margin, variance


def _count_by_group(samples: Iterable[tuple[str, str]]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {}
    for group, entry in samples:
        counts.setdefault(group, Counter())[entry] += 1
    return counts
