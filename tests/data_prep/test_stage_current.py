"""data_prep.shards.stage_is_current: a cached stage is reused only when its
marker file holds the same settings (tuples compare as the lists JSON stores)."""
import json

from data_prep.shards import stage_is_current


def test_stage_is_current(tmp_path):
    path = tmp_path / "done.json"
    settings = {"min_df": 2, "kinds": ("object", "relation")}
    assert not stage_is_current(str(path), "settings", settings)      # never built
    path.write_text('{"settings": {"min_df": 2')                         # interrupted write
    assert not stage_is_current(str(path), "settings", settings)
    path.write_text(json.dumps({"settings": {"min_df": 2, "kinds": ["object", "relation"]}, "n": 5}))
    assert stage_is_current(str(path), "settings", settings)
    assert not stage_is_current(str(path), "settings", {**settings, "min_df": 3})
    assert not stage_is_current(str(path), "params", settings)
    path.write_text("[1, 2]")
    assert not stage_is_current(str(path), "settings", settings)
