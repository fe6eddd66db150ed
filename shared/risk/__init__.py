"""The risk engine (风控), pure: signals of one order (signals.py), a merchant's rules as data
(rules.py, defaults.py), the decision (engine.py), and what the store reads and writes for it
(counters.py). No AWS here; docs/risk.md tells the whole story."""

from shared.risk.counters import CounterItem, CounterWrite, counter_items, counter_write
from shared.risk.defaults import default_rules
from shared.risk.engine import Decision, Hit, Skip, decide
from shared.risk.rules import RiskRules, parse_rules, stored_rules, with_blocked
from shared.risk.signals import Fingerprints, History, Signals, SignalsUsed, Velocity, signals_used

__all__ = [
    "CounterItem",
    "CounterWrite",
    "Decision",
    "Fingerprints",
    "Hit",
    "History",
    "RiskRules",
    "Signals",
    "SignalsUsed",
    "Skip",
    "Velocity",
    "counter_items",
    "counter_write",
    "decide",
    "default_rules",
    "parse_rules",
    "signals_used",
    "stored_rules",
    "with_blocked",
]
