import pytest

from course_lib.food_artwork import dish_image, dishes, side_by_side


def test_every_listed_dish_opens():
    for file, info in dishes().items():
        assert dish_image(info["en"]).size == (256, 256)
        assert dish_image(info["zh"]).mode == "RGB"


def test_compositions_and_unknown_dish():
    assert side_by_side(["dumplings", "ramen noodles"]).size == (512, 256)
    assert side_by_side(["饺子", "月饼", "寿司"], vertical=True).size == (256, 768)
    with pytest.raises(KeyError, match="no dish 'pizza'"):
        dish_image("pizza")
