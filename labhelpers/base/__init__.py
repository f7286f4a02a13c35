"""Foundations every layer may use: text normalisation, hub ids, API drift, the installed versions, batch and
step arithmetic. Imports nothing else of labhelpers.
"""
