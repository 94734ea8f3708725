"""Plate-confidence calibration: the logistic fit and the shipped coefficients."""

import json
from pathlib import Path

import numpy as np
import pytest

from plate_ocr.errors import ModelError
from reader.calibration import FEATURES, Calibration, PlateFeatures, fit_logistic
from reader.views import DETECTOR_VIEWS, IDENTITY, View


def test_the_fit_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    p = 1 / (1 + np.exp(-(0.5 + 2.0 * x[:, 0] - 1.0 * x[:, 1])))
    y = rng.random(4000) < p
    weights, intercept = fit_logistic(x.tolist(), y.tolist(), l2=0.0)
    assert weights == pytest.approx((2.0, -1.0), abs=0.15)
    assert intercept == pytest.approx(0.5, abs=0.15)


def _features(**kw: object) -> PlateFeatures:
    base: dict[str, object] = dict(
        posterior=0.9, min_char=0.8, agreement=1.0, format=True, length=7
    )
    base.update(kw)
    return PlateFeatures(**base)  # type: ignore[arg-type]


def test_the_shipped_calibration_covers_every_reader_and_is_monotone() -> None:
    from reader.bundle import file_sha256
    from reader.fast_reader import bundled_fast_reader_path

    calibration = Calibration.load()
    assert set(calibration.models) == {"fused", "detector", "fast", "fused_fast"}
    assert calibration.fast_reader_sha256 == file_sha256(bundled_fast_reader_path())
    for reader in calibration.models:
        low = calibration.probability(reader, _features(min_char=0.3, posterior=0.4))
        high = calibration.probability(reader, _features(min_char=0.99, posterior=0.99))
        assert 0.0 < low < high < 1.0


def test_an_empty_reading_has_zero_confidence() -> None:
    assert Calibration.load().probability("fused", _features(length=0)) == 0.0


def test_a_reader_without_coefficients_keeps_its_raw_score(tmp_path: Path) -> None:
    assert Calibration(models={}).probability("fused", _features(min_char=0.42)) == 0.42


def test_a_malformed_file_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"readers": {"fused": {"weights": [1.0]}}}))
    with pytest.raises(ModelError, match="malformed"):
        Calibration.load(path)
    path.write_text(json.dumps({"readers": {"fused": {"weights": [1.0], "intercept": 0}}}))
    with pytest.raises(ModelError, match="has 1 weights"):
        Calibration.load(path)
    assert len(FEATURES) != 1


def test_the_shipped_file_carries_the_presence_model_and_checks_its_features(
    tmp_path: Path,
) -> None:
    assert Calibration.load().presence is not None
    path = tmp_path / "calibration.json"
    entry = {"features": ["score"], "weights": [1.0], "intercept": 0.0}
    path.write_text(json.dumps({"readers": {}, "presence": entry}))
    with pytest.raises(ModelError, match="presence features"):
        Calibration.load(path)


def test_the_class_bias_reweights_the_scores_and_must_cover_every_class(tmp_path: Path) -> None:
    scores = np.full(36, 0.01)
    scores[[17, 22]] = [0.6, 0.4]  # H ahead of M
    bias = [0.0] * 36
    bias[22] = 1.0
    p = Calibration(models={}, class_bias=tuple(bias)).class_probabilities(scores)
    assert p.sum() == pytest.approx(1.0) and p.argmax() == 22
    assert Calibration(models={}).class_probabilities(scores).argmax() == 17
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"readers": {}, "class_bias": [0.0] * 35}))
    with pytest.raises(ModelError, match="class bias"):
        Calibration.load(path)


def test_the_file_names_the_views_its_corrections_were_fitted_with(tmp_path: Path) -> None:
    assert Calibration.load().views == DETECTOR_VIEWS
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"readers": {}}))
    assert Calibration.load(path).views == (IDENTITY,)  # fitted before views: the crop alone
    path.write_text(json.dumps({"readers": {}, "detector_views": [{"stretch": 1.2, "margin": 0}]}))
    assert Calibration.load(path).views == (View(stretch=1.2),)
    for bad in ([{"stretch": 1.2}], [{"stretch": 0, "margin": 0}], []):
        path.write_text(json.dumps({"readers": {}, "detector_views": bad}))
        with pytest.raises(ModelError, match="malformed"):
            Calibration.load(path)


def test_a_calibration_applies_only_to_the_weights_it_was_fitted_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "calibration.json"
    fitted = {"readers": {}, "class_bias": [0.5] * 36, "detector_sha256": "ab" * 32}
    path.write_text(json.dumps(fitted))
    assert Calibration.load_for("ab" * 32, path).class_bias == (0.5,) * 36
    other = Calibration.load_for("cd" * 32, path)
    assert other == Calibration(models={})
    assert "fitted for detector abababababab, not these weights (cdcdcdcdcdcd)" in caplog.text
    path.write_text(json.dumps({"readers": {}, "class_bias": [0.5] * 36}))
    assert Calibration.load_for("cd" * 32, path).class_bias == (0.5,) * 36  # not recorded
    assert Calibration.load().detector_sha256 is not None  # the shipped file records it


def test_fast_reader_entries_apply_to_the_fast_reader_they_were_fitted_for() -> None:
    entry = ((0.0,) * 5, 1.0)
    fitted = Calibration(
        models={"fused": entry, "fast": entry, "fused_fast": entry}, fast_reader_sha256="a" * 64
    )
    assert fitted.for_fast_reader("a" * 64) is fitted
    other = fitted.for_fast_reader("b" * 64)
    assert set(other.models) == {"fused"}  # the others keep their raw confidence
    assert Calibration(models={"fast": entry}).for_fast_reader("b" * 64).models == {"fast": entry}
