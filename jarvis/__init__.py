"""J.A.R.V.I.S. Desktop: a local assistant with a live system monitor, a chat with a local
language model, a model manager and plugins, in a native window or a browser tab."""

__version__ = '0.1.0'
