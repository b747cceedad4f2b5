"""Interoperability: OpenQASM, Qiskit and PennyLane circuits in; qjaxrob as a PennyLane device."""
