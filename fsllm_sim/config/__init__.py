"""Typed scenario configuration: schema (dataclasses with units and ranges), loader and reference doc."""
from .loader import dump_scenario, load_scenario, problem_fingerprint, scenario_from_dict, scenario_to_dict
from .schema import Scenario

__all__ = ["Scenario", "load_scenario", "scenario_from_dict", "scenario_to_dict", "dump_scenario", "problem_fingerprint"]
