"""Fitting item parameters from responses (MML-EM), fit statistics, DIF, linking and drift.
Imports only `irt`."""
