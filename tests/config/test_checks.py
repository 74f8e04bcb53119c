"""keras_inst.config.checks: every failed check names the config key and the bad value."""

import pytest

from keras_inst.config.checks import check, check_prob, check_range


def test_checks_pass_good_values_and_name_the_key_of_bad_ones():
    check(True, "a.b", "never shown")
    check_range((0.1, 0.5), "effects.reverb.rt60_s", lo=0.0)
    check_prob(1.0, "mixing.p_musical")
    with pytest.raises(ValueError, match=r"^config key 'x.y': broken$"):
        check(False, "x.y", "broken")
    with pytest.raises(ValueError, match=r"'effects.noise.snr_db': must be \[low, high\] with low <= high, got \[5, 1\]"):
        check_range((5, 1), "effects.noise.snr_db")
    with pytest.raises(ValueError, match=r"'effects.reverb.rt60_s': must be >= 0.05, got \[0.01, 1.0\]"):
        check_range((0.01, 1.0), "effects.reverb.rt60_s", lo=0.05)
    with pytest.raises(ValueError, match=r"'mixing.p_musical': must be a probability in \[0, 1\], got 1.5"):
        check_prob(1.5, "mixing.p_musical")
