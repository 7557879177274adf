"""A faithful fake of the chat platform's API, with fault injection; imports nothing of ours."""

from simulator.app import create_app
from simulator.config import SimulatorConfig
from simulator.corpus import MessageCorpus
from simulator.server import run_in_thread, running_simulator

__all__ = ["MessageCorpus", "SimulatorConfig", "create_app", "run_in_thread", "running_simulator"]
