"""Runnable, resumable studies behind ``qjaxrob run STUDY``."""
