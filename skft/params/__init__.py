"""The estimators' own parameters: their checks, what ``None`` means, and the fit plan.

* :mod:`skft.params.checks`: the parameters skft adds to skorch's, their constraints and the
  objects they name (``check_params``, ``Resolved``, ...);
* :mod:`skft.params.plan`: the fit plan, what a fit's data says about the parameters left
  to skft (``DataProfile``, ``FitPlan``, ``plan_fit`` and the image rule);
* :mod:`skft.params.defaults`: the values a ``None`` parameter takes while skorch code runs.

Import from the modules; this package's ``__init__`` imports nothing, so that a module
below ``skft.params`` in the import graph (``augment``, ``training``) may read the plan.
"""
