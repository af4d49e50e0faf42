"""Framework integrations: callbacks and loggers that record a framework's training as a run.

It owns one module per framework (keras, lightning, transformers, xgboost, lightgbm, optuna,
tensorboard), each importing its framework at the top, so only a script that imports the module
needs the framework: none of them is a dependency of gitexp. What they share is here too: guard
(an error inside a callback is a warning, never a crash of training), values (framework values
as params and metrics) and holder (the run a callback logs into). It may import the logging API
(gitexp/tracking), the run store and the shared modules; nothing below it imports it.
"""
