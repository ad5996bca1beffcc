"""Questions about this machine, answered from its own live and recorded state.

``MachineSources`` are read-only views of the monitor, the alerts, the model catalog and the chat;
``MachineQueries`` asks them typed questions (``top_processes``, ``history_summary``, ``alerts_between``,
``model_fit``, ...) that return dataclasses with ``to_dict()``; ``answer`` turns a question in German or
English into a short answer with the numbers. The System status plugin answers with it; a tool layer for
models can call the same queries.
"""
from .answers import Answer, answer
from .queries import MachineQueries
from .sources import MachineSources

__all__ = ['Answer', 'MachineQueries', 'MachineSources', 'answer']
