import json

from tests.tools import load_tool


def test_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    tool = load_tool("bench_forgetting")
    (tmp_path / "notes.txt").write_text("mine")
    assert tool.main(["--out", str(tmp_path)]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written
    assert tool.main(["--out", str(tmp_path / "new"), "--modes", "full,bogus"]) == 2


def test_the_customer_labels_only_its_four_pairs_and_the_test_split_all_of_them(tmp_path):
    tool = load_tool("bench_forgetting")
    customer = json.loads((tool.write_customer(tmp_path / "c", 6, 0).parent / "annotations.json").read_text())
    tuned = {tool.WORLD.category_id(p) for p in tool.TUNED}
    assert {c["id"] for c in customer["categories"]} == tuned
    assert customer["annotations"] and {a["category_id"] for a in customer["annotations"]} <= tuned
    scenes = [tool._customer_scene(i, 0) for i in range(6)]
    assert all(any(o.pair not in tool.TUNED for o in s.objects) for s in scenes)  # others are there, unlabelled
    assert sum(len([o for o in s.objects if o.pair in tool.TUNED]) for s in scenes) == len(customer["annotations"])
    test = json.loads((tool.write_test(tmp_path / "t", 3, 0).parent / "test" / "annotations.json").read_text())
    groups = [c["group"] for c in test["categories"]]
    assert (groups.count("tuned"), groups.count("seen"), groups.count("held_out")) == (4, 52, 8)
