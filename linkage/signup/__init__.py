"""Signup verification: does a new account attach to a known farm?

A new signup has no requests yet, only its sign-up attributes (e-mail, IP,
device, card, user agent).  We normalise them exactly as the history was
normalised, look them up in the run's ``signup_index`` (identifiers of clustered or flagged accounts).  Each
identifier votes for a cluster with the share of its holders that belong to it
(``m_ic / holders_i``: a card held only by a farm votes 1, a residential subnet where
a third of the holders are farm accounts votes 1/3, a carrier NAT votes ~0); votes
are combined by identifier *family* (network = ip+subnet, e-mail = mailbox+domain,
device = fingerprint+user agent, payment, other) taking the strongest vote in a
family (an IP and its subnet are not independent evidence) and a noisy-OR across
families::

    attach_c = 1 - prod_family (1 - max_{i in family} m_ic / holders_i)
    link score = max_c  cluster_score_c * attach_c

**Velocity** catches a farm that has not been clustered yet: many new accounts on
one card / device / canonical mailbox / domain / subnet within minutes.  It counts
*distinct account ids* per identifier within the window, on the **server's clock**
(the time :meth:`SignupScorer.score_one` is called, or the ``now`` it is given): the
client's ``created_at`` is recorded by the caller but never moves the window, so a
signup dated hours ahead or years back neither resets nor escapes it, and a retry of
the same account does not count twice.  The in-memory window is warmed from the
store on start-up (``observe``, by the time each signup was received).  The two are
combined as a noisy-OR.  Scoring one signup is a handful of dictionary look-ups.

Modules, one concept each: normalisation of a signup's attributes into identifiers
(:mod:`linkage.identifiers.signup_keys`, shared with partner matching), the run's index
(:mod:`linkage.signup.index`), the velocity window (:mod:`linkage.signup.velocity`) and
the decision (:mod:`linkage.signup.scorer`).
"""

from __future__ import annotations

from linkage.identifiers.signup_keys import record_identifiers, signup_identifiers
from linkage.signup.index import SignupIndex
from linkage.signup.scorer import SignupResult, SignupScorer
from linkage.signup.velocity import VELOCITY_LIMITS, VELOCITY_WINDOW_S, VelocityWindow

__all__ = [
    "VELOCITY_LIMITS",
    "VELOCITY_WINDOW_S",
    "SignupIndex",
    "SignupResult",
    "SignupScorer",
    "VelocityWindow",
    "record_identifiers",
    "signup_identifiers",
]
