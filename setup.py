# Metadata lives in setup.cfg; this shim keeps `pip install -e .` working with older pips.
from setuptools import setup

setup()
