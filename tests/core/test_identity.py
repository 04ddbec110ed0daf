"""Tests for cordon.core.identity (pure Python: run with ``pytest -p no:django``).

The property tests pin down what MOD 11-2 guarantees and nothing more: every single-character
substitution is caught (each weight 2^k mod 11 is a unit mod 11), and so is every swap of two
adjacent distinct characters, because neighbouring weights differ by a unit too (w_i = 2·w_{i+1}
mod 11, so w_i - w_{i+1} = w_{i+1} ≠ 0), including the swap with the check character, whose weight
is 1. Two independent substitutions, on the other hand, can cancel out, and a test shows that.
"""

from __future__ import annotations

import pickle
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cordon.core.identity import (
    PROVINCE_CODES,
    DocumentType,
    IdentityError,
    ResidentId,
    check_digit,
    make_resident_id,
    mask_address,
    mask_document,
    mask_name,
    mask_phone,
    normalise_phone,
    normalise_sex,
    parse_document_type,
    parse_resident_id,
    validate_document,
)

TODAY = date.today()
ALPHABET = "0123456789X"

regions = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(sorted(PROVINCE_CODES)),
    st.text(alphabet="0123456789", min_size=4, max_size=4),
)
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
seqs = st.integers(min_value=0, max_value=499)
sexes = st.sampled_from(["M", "F"])


def _with_check(first17: str) -> str:
    return first17 + check_digit(first17)


def _valid(number: str) -> bool:
    try:
        parse_resident_id(number, today=TODAY)
    except IdentityError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@given(region=regions, born=birth_dates, seq=seqs, sex=sexes)
def test_generated_numbers_are_valid_and_round_trip(region: str, born: date, seq: int, sex: str) -> None:
    number = make_resident_id(region, born, seq, sex)
    parsed = parse_resident_id(number, today=TODAY)
    assert parsed == ResidentId(
        number=number,
        region_code=region,
        birth_date=born,
        sex=sex,
        sequence=2 * seq + (1 if sex == "M" else 0),
    )
    assert len(number) == 18
    assert (
        validate_document(DocumentType.RESIDENT_ID, number, sex=sex, birth_date=born, today=TODAY) == number
    )
    # The lower-case form of an X check character is the same number.
    assert parse_resident_id(number.lower(), today=TODAY).number == number


@settings(max_examples=150, deadline=None)
@given(region=regions, born=birth_dates, seq=seqs, sex=sexes)
def test_every_single_character_substitution_is_rejected(region: str, born: date, seq: int, sex: str) -> None:
    number = make_resident_id(region, born, seq, sex)
    for position in range(18):
        for char in ALPHABET:
            if char == number[position]:
                continue
            corrupted = number[:position] + char + number[position + 1 :]
            with pytest.raises(IdentityError) as caught:
                parse_resident_id(corrupted, today=TODAY)
            assert caught.value.code in {
                "bad_character",
                "unknown_region",
                "bad_birth_date",
                "future_birth_date",
                "bad_check_digit",
            }


@settings(max_examples=150, deadline=None)
@given(region=regions, born=birth_dates, seq=seqs, sex=sexes)
def test_every_adjacent_transposition_of_distinct_characters_is_rejected(
    region: str, born: date, seq: int, sex: str
) -> None:
    number = make_resident_id(region, born, seq, sex)
    for i in range(17):
        a, b = number[i], number[i + 1]
        if a == b:
            continue  # swapping equal characters changes nothing
        swapped = number[:i] + b + a + number[i + 2 :]
        assert not _valid(swapped), (number, swapped)


@given(first17=st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_digit_satisfies_the_iso_7064_equation(first17: str) -> None:
    # MOD 11-2: sum(d_i * 2^(18-i)) + check ≡ 1 (mod 11), with X standing for 10.
    check = check_digit(first17)
    value = 10 if check == "X" else int(check)
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17)) + value
    assert total % 11 == 1


def test_two_substitutions_can_cancel_out() -> None:
    # Not a weakness of the code, a limit of any single check character: shown so nobody writes
    # a test that expects otherwise.
    number = make_resident_id("430102", date(1990, 1, 1), 10, "M")
    found = None
    for p in range(14, 16):
        for q in range(p + 1, 17):
            for x in "0123456789":
                for y in "0123456789":
                    if x == number[p] or y == number[q]:
                        continue
                    candidate = list(number)
                    candidate[p], candidate[q] = x, y
                    if _valid("".join(candidate)):
                        found = "".join(candidate)
                        break
    assert found is not None and found != number


def test_make_resident_id_over_a_demo_sized_batch() -> None:
    """The demo makes every number with this helper: each must parse back to its region, birth date and sex,
    and none may repeat within a batch."""
    born = date(1985, 6, 15)
    seen = set()
    for i in range(20_000):
        day, sex = born + timedelta(days=i % 3000), ("F" if i % 2 else "M")
        number = make_resident_id("430102", day, i % 500, sex)
        parsed = parse_resident_id(number, today=TODAY)
        assert (parsed.region_code, parsed.birth_date, parsed.sex) == ("430102", day, sex), number
        seen.add(number)
    assert len(seen) == len({(i % 3000, i % 500, i % 2) for i in range(20_000)})


# ---------------------------------------------------------------------------------------------
# Resident ID: explicit cases
# ---------------------------------------------------------------------------------------------


def test_standard_example_with_x_check_character_and_lower_case_x() -> None:
    # The worked example of GB 11643-1999: a woman born 1949-12-31 in Chaoyang District, Beijing.
    parsed = parse_resident_id("11010519491231002x")
    assert parsed.number == "11010519491231002X"
    assert parsed.region_code == "110105"
    assert parsed.province_code == "11"
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.sex == "F"
    assert parsed.sequence == 2
    assert check_digit("11010519491231002") == "X"


def test_spaces_are_stripped() -> None:
    number = make_resident_id("430102", date(1990, 1, 1), 308, "M")
    spaced = f" {number[:6]} {number[6:14]} {number[14:]} "
    assert parse_resident_id(spaced).number == number
    assert validate_document("身份证", spaced) == number


def test_fifteen_digit_legacy_number_is_rejected_with_reason() -> None:
    with pytest.raises(IdentityError) as caught:
        parse_resident_id("430102900101123")
    assert caught.value.code == "legacy_15_digit"
    assert "15" in str(caught.value) and "18" in str(caught.value)
    assert "18-character" in caught.value.message_en


@pytest.mark.parametrize("number, length", [("43010219900101617", 17), ("4301021990010161780", 19), ("1", 1)])
def test_wrong_length(number: str, length: int) -> None:
    with pytest.raises(IdentityError) as caught:
        parse_resident_id(number)
    assert caught.value.code == "bad_length"
    assert f"{length} 位" in str(caught.value)
    assert caught.value.params == {"expected": 18, "actual": length}


def test_bad_character_names_position_and_character() -> None:
    with pytest.raises(IdentityError) as caught:
        parse_resident_id("4301021990O1016178")  # letter O typed for zero
    assert caught.value.code == "bad_character"
    assert caught.value.params == {"position": 11, "char": "O"}
    assert "第 11 位" in str(caught.value) and "O" in str(caught.value)
    with pytest.raises(IdentityError) as caught:
        parse_resident_id("43010219900101617Y")
    assert caught.value.params["position"] == 18


def test_thirtieth_of_february_is_rejected() -> None:
    number = _with_check("43010219900230617")  # check digit right: only the date is wrong
    with pytest.raises(IdentityError) as caught:
        parse_resident_id(number)
    assert caught.value.code == "bad_birth_date"
    assert "19900230" in str(caught.value)


def test_29_february_only_in_leap_years() -> None:
    assert parse_resident_id(_with_check("43010220000229617")).birth_date == date(2000, 2, 29)
    with pytest.raises(IdentityError, match="19000229"):
        parse_resident_id(_with_check("43010219000229617"))


def test_birth_before_1900_is_rejected() -> None:
    with pytest.raises(IdentityError) as caught:
        parse_resident_id(_with_check("43010218991231617"))
    assert caught.value.code == "bad_birth_date"


def test_future_birth_date_is_rejected() -> None:
    number = make_resident_id("430102", date(2030, 1, 1), 1, "F")
    with pytest.raises(IdentityError) as caught:
        parse_resident_id(number, today=date(2025, 6, 1))
    assert caught.value.code == "future_birth_date"
    assert "2030-01-01" in str(caught.value) and "2025-06-01" in str(caught.value)
    # Born today is fine.
    assert parse_resident_id(number, today=date(2030, 1, 1)).birth_date == date(2030, 1, 1)


@pytest.mark.parametrize(
    "prefix", ["00", "10", "16", "20", "24", "38", "47", "55", "60", "66", "72", "84", "99"]
)
def test_unknown_region_prefix(prefix: str) -> None:
    with pytest.raises(IdentityError) as caught:
        parse_resident_id(_with_check(prefix + "010219900101617"))
    assert caught.value.code == "unknown_region"
    assert prefix in str(caught.value)


def test_retired_county_codes_stay_valid() -> None:
    # 430122 was 望城县 before it became 望城区 (430112) in 2011; cards issued under it are valid.
    assert parse_resident_id(make_resident_id("430122", date(1970, 5, 4), 7, "F")).region_code == "430122"


def test_bad_check_digit_says_expected_and_actual() -> None:
    good = make_resident_id("430102", date(1990, 1, 1), 308, "M")
    wrong = "0" if good[-1] != "0" else "1"
    with pytest.raises(IdentityError) as caught:
        parse_resident_id(good[:-1] + wrong)
    assert caught.value.code == "bad_check_digit"
    assert caught.value.params == {"expected": good[-1], "actual": wrong}
    assert f"应为 {good[-1]}" in str(caught.value) and f"实际为 {wrong}" in str(caught.value)
    assert f"expected {good[-1]}, got {wrong}" in caught.value.message_en


def test_sex_and_birth_date_cross_check() -> None:
    number = make_resident_id("430102", date(1990, 1, 1), 308, "M")
    assert validate_document("resident_id", number, sex="男", birth_date=date(1990, 1, 1)) == number
    with pytest.raises(IdentityError) as caught:
        validate_document("resident_id", number, sex="F")
    assert caught.value.code == "sex_mismatch"
    assert str(caught.value) == "性别与身份证号码不符：号码第 17 位表示男，登记为女"
    assert "digit 17 says male, the record says female" in caught.value.message_en
    with pytest.raises(IdentityError) as caught:
        validate_document("resident_id", number, birth_date=date(1990, 1, 2))
    assert caught.value.code == "birth_date_mismatch"
    assert str(caught.value) == "出生日期与身份证号码不符：号码中为 1990-01-01，登记为 1990-01-02"


def test_check_digit_rejects_bad_input() -> None:
    for bad in ["", "1234567890123456", "123456789012345678", "1234567890123456X"]:
        with pytest.raises(IdentityError):
            check_digit(bad)


def test_make_resident_id_input_checks() -> None:
    assert make_resident_id("430102", date(1990, 1, 1), 0, "女")[14:17] == "000"
    assert make_resident_id("430102", date(1990, 1, 1), 499, "M")[14:17] == "999"
    with pytest.raises(IdentityError):
        make_resident_id("4301", date(1990, 1, 1), 1, "M")
    with pytest.raises(IdentityError):
        make_resident_id("990102", date(1990, 1, 1), 1, "M")
    with pytest.raises(IdentityError):
        make_resident_id("430102", date(1990, 1, 1), 500, "M")
    with pytest.raises(IdentityError):
        make_resident_id("430102", date(1990, 1, 1), 1, "X")


def test_identity_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError) as caught:
        parse_resident_id("")
    err = caught.value
    assert isinstance(err, IdentityError) and err.code == "empty"
    again = pickle.loads(pickle.dumps(err))
    assert (again.code, str(again), again.message_en) == (err.code, str(err), err.message_en)


@pytest.mark.parametrize(
    "value, expected",
    [("M", "M"), ("m", "M"), ("男", "M"), ("male", "M"), ("1", "M"), ("F", "F"), ("女", "F"), ("2", "F")],
)
def test_normalise_sex(value: str, expected: str) -> None:
    assert normalise_sex(value) == expected


def test_normalise_sex_rejects_unknown() -> None:
    with pytest.raises(IdentityError):
        normalise_sex("?")


# ---------------------------------------------------------------------------------------------
# Other documents
# ---------------------------------------------------------------------------------------------

VALID_DOCUMENTS = [
    (DocumentType.PASSPORT, "E12345678", "E12345678"),
    (DocumentType.PASSPORT, "ea1234567", "EA1234567"),
    (DocumentType.PASSPORT, "G 1234 5678", "G12345678"),
    (DocumentType.PASSPORT, "X1234", "X1234"),
    (DocumentType.PASSPORT, "A" * 17, "A" * 17),
    (DocumentType.HK_MACAO_PERMIT, "H12345678", "H12345678"),
    (DocumentType.HK_MACAO_PERMIT, "m1234567801", "M1234567801"),
    (DocumentType.TAIWAN_PERMIT, "12345678", "12345678"),
    (DocumentType.TAIWAN_PERMIT, "1234567890", "1234567890"),
    (DocumentType.FOREIGN_PERMANENT_RESIDENCE, "usa123456789012", "USA123456789012"),
    (
        DocumentType.FOREIGN_PERMANENT_RESIDENCE,
        _with_check("91184019900101123"),
        _with_check("91184019900101123"),
    ),
    (DocumentType.HMT_RESIDENCE_PERMIT, make_resident_id("810000", date(1980, 3, 3), 5, "F"), None),
    (DocumentType.HMT_RESIDENCE_PERMIT, make_resident_id("830000", date(1980, 3, 3), 5, "M"), None),
    (DocumentType.OTHER, " 军字第 123 号 ", "军字第123号"),
]


@pytest.mark.parametrize("doc_type, number, expected", VALID_DOCUMENTS)
def test_valid_documents(doc_type: DocumentType, number: str, expected: str | None) -> None:
    assert validate_document(doc_type, number) == (expected or number)


INVALID_DOCUMENTS = [
    (DocumentType.PASSPORT, "E123", "bad_length"),
    (DocumentType.PASSPORT, "A" * 18, "bad_length"),
    (DocumentType.PASSPORT, "E1234567#", "bad_character"),
    (DocumentType.HK_MACAO_PERMIT, "X12345678", "bad_format"),
    (DocumentType.HK_MACAO_PERMIT, "H1234567", "bad_format"),
    (DocumentType.HK_MACAO_PERMIT, "H123456789", "bad_format"),
    (DocumentType.TAIWAN_PERMIT, "1234567", "bad_format"),
    (DocumentType.TAIWAN_PERMIT, "T1234567", "bad_format"),
    (DocumentType.FOREIGN_PERMANENT_RESIDENCE, "US1123456789012", "bad_format"),
    (DocumentType.FOREIGN_PERMANENT_RESIDENCE, "USA12345678901", "bad_format"),
    (DocumentType.FOREIGN_PERMANENT_RESIDENCE, _with_check("81184019900101123"), "bad_format"),
    (DocumentType.FOREIGN_PERMANENT_RESIDENCE, "9118401990010112", "bad_length"),
    (
        DocumentType.HMT_RESIDENCE_PERMIT,
        make_resident_id("430102", date(1980, 3, 3), 5, "F"),
        "unknown_region",
    ),
    (DocumentType.HMT_RESIDENCE_PERMIT, "81000019800303011", "bad_length"),
    (DocumentType.OTHER, "9" * 33, "bad_length"),
    (DocumentType.OTHER, "  ", "empty"),
]


@pytest.mark.parametrize("doc_type, number, code", INVALID_DOCUMENTS)
def test_invalid_documents(doc_type: DocumentType, number: str, code: str) -> None:
    with pytest.raises(IdentityError) as caught:
        validate_document(doc_type, number)
    assert caught.value.code == code
    assert str(caught.value) and caught.value.message_en


def test_foreign_permanent_residence_check_digit() -> None:
    good = _with_check("91184019900101123")
    wrong = "0" if good[-1] != "0" else "1"
    with pytest.raises(IdentityError) as caught:
        validate_document("永居证", good[:-1] + wrong)
    assert caught.value.code == "bad_check_digit"


def test_hmt_residence_permit_cross_checks_sex() -> None:
    number = make_resident_id("820000", date(1975, 8, 8), 3, "F")
    assert validate_document("港澳台居民居住证", number, sex="F", birth_date=date(1975, 8, 8)) == number
    with pytest.raises(IdentityError) as caught:
        validate_document("港澳台居民居住证", number, sex="M")
    assert caught.value.code == "sex_mismatch"


def test_validate_document_unknown_type() -> None:
    with pytest.raises(IdentityError) as caught:
        validate_document("驾驶证", "123")
    assert caught.value.code == "unknown_document_type"


# ---------------------------------------------------------------------------------------------
# Document types
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("resident_id", DocumentType.RESIDENT_ID),
        ("身份证", DocumentType.RESIDENT_ID),
        ("居民身份证", DocumentType.RESIDENT_ID),
        (" 身份证号码 ", DocumentType.RESIDENT_ID),
        ("Resident ID", DocumentType.RESIDENT_ID),
        ("ID card", DocumentType.RESIDENT_ID),
        ("护照", DocumentType.PASSPORT),
        ("PASSPORT", DocumentType.PASSPORT),
        ("港澳通行证", DocumentType.HK_MACAO_PERMIT),
        ("回乡证", DocumentType.HK_MACAO_PERMIT),
        ("港澳居民来往内地通行证", DocumentType.HK_MACAO_PERMIT),
        ("Home Return Permit", DocumentType.HK_MACAO_PERMIT),
        ("hk_macao_permit", DocumentType.HK_MACAO_PERMIT),
        ("台胞证", DocumentType.TAIWAN_PERMIT),
        ("台湾居民来往大陆通行证", DocumentType.TAIWAN_PERMIT),
        ("taiwan-permit", DocumentType.TAIWAN_PERMIT),
        ("永居证", DocumentType.FOREIGN_PERMANENT_RESIDENCE),
        ("外国人永久居留身份证", DocumentType.FOREIGN_PERMANENT_RESIDENCE),
        ("Foreign permanent resident ID card", DocumentType.FOREIGN_PERMANENT_RESIDENCE),
        ("港澳台居民居住证", DocumentType.HMT_RESIDENCE_PERMIT),
        ("hmt_residence_permit", DocumentType.HMT_RESIDENCE_PERMIT),
        ("其他", DocumentType.OTHER),
        ("Other", DocumentType.OTHER),
        (DocumentType.PASSPORT, DocumentType.PASSPORT),
    ],
)
def test_parse_document_type_aliases(text: str, expected: DocumentType) -> None:
    assert parse_document_type(text) is expected


@pytest.mark.parametrize("text", ["", "   ", "驾照", "visa"])
def test_parse_document_type_unknown(text: str) -> None:
    with pytest.raises(IdentityError):
        parse_document_type(text)


def test_document_type_labels_and_values() -> None:
    assert [t.value for t in DocumentType] == [
        "resident_id",
        "passport",
        "hk_macao_permit",
        "taiwan_permit",
        "foreign_permanent_residence",
        "hmt_residence_permit",
        "other",
    ]
    assert DocumentType.RESIDENT_ID == "resident_id"
    assert DocumentType.RESIDENT_ID.label_zh == "居民身份证"
    assert DocumentType.PASSPORT.label_en == "Passport"
    for member in DocumentType:
        assert member.label_zh and member.label_en
        assert parse_document_type(member.label_zh) is member
        assert parse_document_type(member.label_en) is member
    assert ("passport", "护照") in DocumentType.choices()


# ---------------------------------------------------------------------------------------------
# Phones
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("13812345678", "13812345678"),
        (" 138 1234 5678 ", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("+8613812345678", "13812345678"),
        ("0086-13812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("19912345678", "19912345678"),
        ("0731-84567890", "0731-84567890"),
        ("0731 8456 7890", "0731-84567890"),
        ("073184567890", "0731-84567890"),
        ("(0731)84567890", "0731-84567890"),
        ("0731-8456789", "0731-8456789"),
        ("010-62345678", "010-62345678"),
        ("01062345678", "010-62345678"),
        ("02083456789", "020-83456789"),
        ("+86 731 8456 7890", "0731-84567890"),
        ("+86-10-62345678", "010-62345678"),
    ],
)
def test_normalise_phone(text: str, expected: str) -> None:
    assert normalise_phone(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "1381234567",
        "138123456789",
        "12812345678",
        "23812345678",
        "+1 415 555 0123",
        "1381234567a",
        "0731-1234567",
        "0731-845678901",
        "7-84567890",
        "84567890",
    ],
)
def test_normalise_phone_rejects(text: str) -> None:
    with pytest.raises(IdentityError) as caught:
        normalise_phone(text)
    assert caught.value.code in {"bad_phone", "empty_phone"}


def test_phone_error_names_the_problem() -> None:
    with pytest.raises(IdentityError, match="11 位，实际为 10 位"):
        normalise_phone("1381234567")
    with pytest.raises(IdentityError, match="非法字符「a」"):
        normalise_phone("1381234567a")


# ---------------------------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("张三", "张*"),
        ("张三丰", "张**"),
        ("欧阳娜娜", "欧***"),
        ("张", "张*"),
        (" 王五 ", "王*"),
        ("买买提·艾力", "买**·**"),
        ("John Smith", "J*** S****"),
        ("Anna", "A***"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_name(name: str | None, expected: str) -> None:
    assert mask_name(name) == expected


@pytest.mark.parametrize(
    "number, doc_type, expected",
    [
        ("430102199001011234", None, "430***********1234"),
        ("11010519491231002x", DocumentType.RESIDENT_ID, "110***********002X"),
        ("E12345678", DocumentType.PASSPORT, "E1****678"),
        ("H1234567801", "港澳通行证", "H1******801"),
        ("12345678", DocumentType.TAIWAN_PERMIT, "1*****78"),
        ("USA123456789012", DocumentType.FOREIGN_PERMANENT_RESIDENCE, "US**********012"),
        ("AB12", None, "A***"),
        ("A", None, "*"),
        ("", None, ""),
        (None, None, ""),
        ("430102199001011234", "not a type", "430***********1234"),
    ],
)
def test_mask_document(number: str | None, doc_type: object, expected: str) -> None:
    assert mask_document(number, doc_type) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "phone, expected",
    [
        ("13812345678", "138****5678"),
        ("+86 138 1234 5678", "138****5678"),
        ("0731-84567890", "0731-****7890"),
        ("not a phone", "*****hone"),
        ("12", "**"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone(phone: str | None, expected: str) -> None:
    assert mask_phone(phone) == expected


@pytest.mark.parametrize(
    "address, expected",
    [
        ("湖南省长沙市芙蓉区五一大道 100 号", "湖南省长沙市****"),
        ("长沙市芙蓉区五一大道", "长沙市芙蓉区****"),
        ("湖南省长沙县星沙街道", "湖南省长沙县****"),
        ("五一大道 100 号", "五一大****"),
        ("12 Main Street, Springfield", "****, Springfield"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_address(address: str | None, expected: str) -> None:
    assert mask_address(address) == expected


@given(st.one_of(st.none(), st.text(), st.integers()))
def test_masking_never_raises(value: object) -> None:
    for mask in (mask_name, mask_document, mask_phone, mask_address):
        assert isinstance(mask(value), str)  # type: ignore[operator]
