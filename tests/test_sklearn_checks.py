"""scikit-learn's own estimator checks on both estimators with the tabular ``mlp`` backbone."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from skft import FineTunedClassifier, FineTunedRegressor

SETTINGS = dict(backbone="mlp", pretrained=False, augment="none", max_epochs=5, lr=1e-2, verbose=0)

#: none: skft passes every applicable check, check_no_attributes_set_in_init
#: included (skorch's own __init__ sets history_, initialized_ and virtual_params_;
#: skft keeps them as class-level defaults until fit)
EXPECTED_FAILURES: dict[str, str] = {}


def expected_failed_checks(estimator):
    return EXPECTED_FAILURES


@parametrize_with_checks(
    [FineTunedClassifier(**SETTINGS), FineTunedRegressor(**SETTINGS)],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_set_params_fuzz_warns_nothing():
    """scikit-learn's check_set_params warned ~40 times when skorch built callbacks too early."""
    import warnings

    from sklearn.utils.estimator_checks import check_set_params

    for estimator in (FineTunedClassifier(**SETTINGS), FineTunedRegressor(**SETTINGS)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_set_params(type(estimator).__name__, estimator)
