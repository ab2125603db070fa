"""ftlaunch login side: config -> plan -> submit -> report. Imports no torch stack."""

__version__ = "0.1.0"
