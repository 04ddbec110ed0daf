"""Identity documents, phone numbers and masking.

Pure Python (no Django) so that importers, the demo generator, the API schemas and the analytics
code can all share one definition of "a valid identifier" and one way of hiding it.

Why it matters: the person registry de-duplicates on (document type, number). A number that is
accepted with a typo creates a second person, splits a contact chain and hides a case. So every
number is validated by the rule of its own document type before it is stored, and every error
says exactly what is wrong, so that the person at the screen (or the import error report) can
fix it in one go.

Standards used:

* GB 11643-1999 citizen identity number (居民身份证号码): 6-digit region code, 8-digit birth
  date, 3-digit sequence (odd 17th digit = male), ISO 7064 MOD 11-2 check character.
* The same structure is used by the residence permit for Hong Kong, Macao and Taiwan residents
  (港澳台居民居住证, region 810000 / 820000 / 830000) and, with a leading 9, by the 2023 foreign
  permanent residence ID card (外国人永久居留身份证).
* Public Security rule for the Home Return Permit (港澳居民来往内地通行证): H (Hong Kong) or
  M (Macao) + 8-digit lifelong number, optionally + 2 digits counting re-issues.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache
from operator import mul

__all__ = [
    "HMT_REGION_CODES",
    "MIN_BIRTH_DATE",
    "PROVINCE_CODES",
    "DocumentType",
    "IdentityError",
    "ResidentId",
    "check_digit",
    "make_resident_id",
    "mask_address",
    "mask_document",
    "mask_name",
    "mask_phone",
    "normalise_phone",
    "normalise_sex",
    "parse_document_type",
    "parse_resident_id",
    "validate_document",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class IdentityError(ValueError):
    """An identifier that cannot be accepted, with a reason a person can act on.

    ``str(error)`` is the Chinese message (the deployment default); ``message_en`` is the English
    one; ``code`` is a stable machine code for import error reports and API responses, and
    ``params`` holds the values the message was built from (expected / actual, position, ...).
    """

    def __init__(self, code: str, message_zh: str, message_en: str, **params: object) -> None:
        super().__init__(message_zh)
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en
        self.params = params

    @property
    def message(self) -> str:
        """The Chinese message, under the name most callers look for."""
        return self.message_zh

    def __repr__(self) -> str:
        return f"IdentityError(code={self.code!r}, message={self.message_zh!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Errors travel through background-task results and multiprocessing: keep them picklable.
        return (_rebuild_error, (self.code, self.message_zh, self.message_en, self.params))


def _rebuild_error(code: str, message_zh: str, message_en: str, params: dict[str, object]) -> IdentityError:
    return IdentityError(code, message_zh, message_en, **params)


# --------------------------------------------------------------------------------------------
# Document types
# --------------------------------------------------------------------------------------------


class DocumentType(StrEnum):
    """Kinds of identity document a person can be registered with.

    The value is what is stored; ``label_zh`` / ``label_en`` are what is shown.
    """

    RESIDENT_ID = "resident_id"
    PASSPORT = "passport"
    HK_MACAO_PERMIT = "hk_macao_permit"
    TAIWAN_PERMIT = "taiwan_permit"
    FOREIGN_PERMANENT_RESIDENCE = "foreign_permanent_residence"
    HMT_RESIDENCE_PERMIT = "hmt_residence_permit"
    OTHER = "other"

    @property
    def label_zh(self) -> str:
        """Official Chinese name of the document."""
        return _LABELS[self][0]

    @property
    def label_en(self) -> str:
        """English name of the document."""
        return _LABELS[self][1]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """(value, Chinese label) pairs, the shape Django model ``choices`` expect."""
        return [(member.value, member.label_zh) for member in cls]


_LABELS: dict[DocumentType, tuple[str, str]] = {
    DocumentType.RESIDENT_ID: ("居民身份证", "Resident identity card"),
    DocumentType.PASSPORT: ("护照", "Passport"),
    DocumentType.HK_MACAO_PERMIT: (
        "港澳居民来往内地通行证",
        "Mainland travel permit for Hong Kong and Macao residents",
    ),
    DocumentType.TAIWAN_PERMIT: ("台湾居民来往大陆通行证", "Mainland travel permit for Taiwan residents"),
    DocumentType.FOREIGN_PERMANENT_RESIDENCE: (
        "外国人永久居留身份证",
        "Foreign permanent resident ID card",
    ),
    DocumentType.HMT_RESIDENCE_PERMIT: (
        "港澳台居民居住证",
        "Residence permit for Hong Kong, Macao and Taiwan residents",
    ),
    DocumentType.OTHER: ("其他证件", "Other document"),
}

# Spellings found in spreadsheets sent in by districts, hospitals and labs, one string per type
# split on spaces. Keys are compared after _alias_key(): NFKC, lower-case, no spaces/punctuation.
_ALIASES: dict[DocumentType, list[str]] = {
    DocumentType.RESIDENT_ID: (
        "身份证 居民身份证 身份证号 身份证号码 二代身份证 第二代居民身份证 公民身份号码 "
        "大陆身份证 内地身份证 身份證 居民身份證 "
        "id idcard idno residentid residentidcard residentidentitycard chineseidcard prcidcard "
        "nationalid sfz"
    ).split(),
    DocumentType.PASSPORT: "护照 普通护照 外国护照 中国护照 護照 passport passportno".split(),
    DocumentType.HK_MACAO_PERMIT: (
        "港澳通行证 港澳居民来往内地通行证 港澳居民通行证 回乡证 回鄉證 港澳居民來往內地通行證 "
        "homereturnpermit hkmacaopermit hkmopermit hongkongandmacaopermit hongkongmacaopermit"
    ).split(),
    DocumentType.TAIWAN_PERMIT: (
        "台胞证 台湾居民来往大陆通行证 台湾通行证 台湾居民通行证 台胞證 臺灣居民來往大陸通行證 "
        "mtp taiwanpermit taiwancompatriotpermit taiwancompatriotcard taiwanpass"
    ).split(),
    DocumentType.FOREIGN_PERMANENT_RESIDENCE: (
        "永居证 外国人永久居留身份证 外国人永久居留证 永久居留证 永久居留身份证 "
        "外國人永久居留身份證 永居證 "
        "foreignpermanentresidence foreignpermanentresidentidcard foreignpermanentresidentcard "
        "permanentresidence permanentresidencecard permanentresidentcard"
    ).split(),
    DocumentType.HMT_RESIDENCE_PERMIT: (
        "港澳台居民居住证 港澳居民居住证 台湾居民居住证 港澳台居住证 港澳臺居民居住證 "
        "hmtresidencepermit hkmtresidencepermit residencepermitforhongkongmacaoandtaiwanresidents"
    ).split(),
    DocumentType.OTHER: "其他 其它 其他证件 其他有效证件 other others".split(),
}

_ALIAS_STRIP = re.compile(r"[\s_\-/\\.,;:'\"()（）【】\[\]·&、]+")


def _alias_key(text: str) -> str:
    return _ALIAS_STRIP.sub("", unicodedata.normalize("NFKC", text).lower())


_ALIAS_INDEX: dict[str, DocumentType] = {}
for _doc_type, _names in _ALIASES.items():
    for _name in (_doc_type.value, *_LABELS[_doc_type], *_names):
        _ALIAS_INDEX[_alias_key(_name)] = _doc_type
del _doc_type, _names, _name


def parse_document_type(text: str | DocumentType) -> DocumentType:
    """Map what an import file or form says to a DocumentType.

    Imports come with 身份证, 居民身份证, 台胞证, "Passport", "resident_id" and the like; they all
    have to land on one stored value or the (type, number) uniqueness breaks.
    """
    if isinstance(text, DocumentType):
        return text
    if not isinstance(text, str) or not text.strip():
        raise IdentityError("empty_document_type", "证件类型为空", "document type is empty")
    found = _ALIAS_INDEX.get(_alias_key(text))
    if found is None:
        raise IdentityError(
            "unknown_document_type",
            f"无法识别的证件类型「{text.strip()}」",
            f"unknown document type {text.strip()!r}",
            value=text,
        )
    return found


# --------------------------------------------------------------------------------------------
# GB 11643-1999
# --------------------------------------------------------------------------------------------

# First two digits of a GB/T 2260 region code (provinces, autonomous regions, municipalities,
# Taiwan 71, Hong Kong 81, Macao 82) plus 83 (Taiwan residents' residence permit, 830000) and
# 91 as found on permits. The full 6-digit code is not required to exist: codes are retired when
# counties merge, and the cards issued under them stay valid for life.
PROVINCE_CODES: frozenset[str] = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82 83 91".split()
)

HMT_REGION_CODES: frozenset[str] = frozenset({"810000", "820000", "830000"})

# Nobody alive was born before this; earlier dates in an ID number are typing errors.
MIN_BIRTH_DATE = date(1900, 1, 1)

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_MAP = "10X98765432"
_ASCII_OFFSET = 48 * sum(_WEIGHTS)
_DIGITS = frozenset("0123456789")
_SPACES = re.compile(r"\s+")


def _check_digit_unchecked(first17: str) -> str:
    """MOD 11-2 without input validation: the hot path of make_resident_id.

    Works on the ASCII codes and removes the constant offset of 48 per digit afterwards, which
    is about twice as fast in CPython as converting each character.
    """
    return _CHECK_MAP[(sum(map(mul, _WEIGHTS, first17.encode("ascii"))) - _ASCII_OFFSET) % 11]


def check_digit(first17: str) -> str:
    """The GB 11643 / ISO 7064 MOD 11-2 check character ("0"-"9" or "X") for 17 digits.

    Exposed because the same check protects the HMT residence permit and the 2023 foreign
    permanent residence card, and because the demo generator and the tests need it.
    """
    if not isinstance(first17, str) or len(first17) != 17 or not set(first17) <= _DIGITS:
        raise IdentityError(
            "bad_check_input",
            "计算校验码需要恰好 17 位数字",
            "the check digit is computed over exactly 17 digits",
            value=first17,
        )
    return _check_digit_unchecked(first17)


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A parsed, valid 18-character resident identity number and what it encodes."""

    number: str
    region_code: str
    birth_date: date
    sex: str  # "M" or "F"
    sequence: int  # the 3-digit sequence code (顺序码) 0-999; its last digit carries the sex

    @property
    def province_code(self) -> str:
        """The 2-digit province-level prefix."""
        return self.region_code[:2]


def _clean_number(number: object) -> str:
    if number is None:
        return ""
    if not isinstance(number, str):
        number = str(number)
    return _SPACES.sub("", unicodedata.normalize("NFKC", number)).upper()


def _parse_gb11643(
    number: str, today: date | None, *, label_zh: str, label_en: str, legacy: bool = False
) -> ResidentId:
    """Shared GB 11643 parser; ``number`` is already cleaned (no spaces, upper-case).

    ``legacy`` turns on the specific message for 15-digit first-generation resident ID numbers.
    """
    if not number:
        raise IdentityError("empty", f"{label_zh}号码为空", f"{label_en} number is empty")
    if legacy and len(number) == 15 and number.isdigit():
        raise IdentityError(
            "legacy_15_digit",
            f"不受理 15 位旧{label_zh}号码：登记库只存 18 位号码，请提供 18 位号码（第二代身份证）",
            f"15-digit legacy {label_en} numbers are not accepted: the registry stores 18-character "
            "numbers; please give the 18-character number",
            length=15,
        )
    if len(number) != 18:
        raise IdentityError(
            "bad_length",
            f"{label_zh}号码应为 18 位，实际为 {len(number)} 位",
            f"{label_en} number must have 18 characters, got {len(number)}",
            expected=18,
            actual=len(number),
        )
    for position, char in enumerate(number[:17], start=1):
        if char not in _DIGITS:
            raise IdentityError(
                "bad_character",
                f"第 {position} 位字符「{char}」无效：前 17 位只能是数字",
                f"character {position} {char!r} is invalid: the first 17 characters must be digits",
                position=position,
                char=char,
            )
    last = number[17]
    if last not in _DIGITS and last != "X":
        raise IdentityError(
            "bad_character",
            f"第 18 位（校验码）「{last}」无效：只能是数字或 X",
            f"character 18 (check character) {last!r} is invalid: it must be a digit or X",
            position=18,
            char=last,
        )
    prefix = number[:2]
    if prefix not in PROVINCE_CODES:
        raise IdentityError(
            "unknown_region",
            f"前两位「{prefix}」不是有效的省级行政区代码",
            f"the first two digits {prefix!r} are not a valid province-level region code",
            prefix=prefix,
        )
    raw_date = number[6:14]
    try:
        birth = date(int(raw_date[:4]), int(raw_date[4:6]), int(raw_date[6:8]))
    except ValueError:
        raise IdentityError(
            "bad_birth_date",
            f"出生日期「{raw_date}」不存在（第 7–14 位）",
            f"birth date {raw_date} (characters 7-14) does not exist",
            value=raw_date,
        ) from None
    if birth < MIN_BIRTH_DATE:
        raise IdentityError(
            "bad_birth_date",
            f"出生日期 {birth.isoformat()} 早于 {MIN_BIRTH_DATE.year} 年，不可能",
            f"birth date {birth.isoformat()} is before {MIN_BIRTH_DATE.year}: impossible",
            value=raw_date,
        )
    today = today or date.today()
    if birth > today:
        raise IdentityError(
            "future_birth_date",
            f"出生日期 {birth.isoformat()} 晚于今天（{today.isoformat()}）",
            f"birth date {birth.isoformat()} is in the future (today is {today.isoformat()})",
            value=raw_date,
        )
    expected = _check_digit_unchecked(number[:17])
    if expected != last:
        raise IdentityError(
            "bad_check_digit",
            f"校验码错误：第 18 位应为 {expected}，实际为 {last}（号码中有输错的数字）",
            f"check character mismatch: expected {expected}, got {last} (a digit was mistyped)",
            expected=expected,
            actual=last,
        )
    return ResidentId(
        number=number,
        region_code=number[:6],
        birth_date=birth,
        sex="M" if (ord(number[16]) - 48) % 2 else "F",
        sequence=int(number[14:17]),
    )


def parse_resident_id(number: str, *, today: date | None = None) -> ResidentId:
    """Validate an 18-character resident identity number and decode it.

    Spaces are removed and a lower-case x is accepted (people type both). 15-digit legacy numbers
    are rejected rather than converted: the conversion would guess the century, and the registry
    keys persons by the 18-character number printed on today's cards.
    ``today`` exists so that tests and replayed imports judge "future birth date" consistently.
    """
    return _parse_gb11643(
        _clean_number(number), today, label_zh="身份证", label_en="resident ID", legacy=True
    )


def normalise_sex(value: object) -> str:
    """Return "M" or "F" from the spellings found in forms and imports (男/女, m/f, male/female, 1/2).

    1/2 follow GB/T 2261.1 (1 男, 2 女).
    """
    text = str(value).strip().lower() if value is not None else ""
    if text in {"m", "male", "男", "1", "man"}:
        return "M"
    if text in {"f", "female", "女", "2", "woman"}:
        return "F"
    raise IdentityError(
        "bad_sex",
        f"无法识别的性别「{value}」：应为 男/女 或 M/F",
        f"unknown sex {value!r}: use M/F",
        value=value,
    )


_SEX_ZH = {"M": "男", "F": "女"}
_SEX_EN = {"M": "male", "F": "female"}


_SEQ3 = tuple(f"{i:03d}" for i in range(1000))


@lru_cache(maxsize=65536)
def _date8(day: date) -> str:
    """YYYYMMDD, cached: formatting dominated the cost of make_resident_id and dates repeat."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def make_resident_id(region_code: str, birth_date: date, seq: int, sex: str) -> str:
    """Build a valid 18-character resident identity number.

    For the demo generator (100,000+ persons) and the tests, so it is a straight format-and-sum
    with only cheap checks. ``seq`` (0-499) is the n-th person of that sex born on that day in
    that region; the 3-digit sequence code becomes ``2 * seq + (1 if male else 0)``, so every
    (seq, sex) pair gives a distinct number and the 17th digit carries the sex as the standard
    requires. The birth date is not compared with today: callers choose their dates.
    """
    if len(region_code) != 6 or not region_code.isdigit() or region_code[:2] not in PROVINCE_CODES:
        raise IdentityError(
            "unknown_region",
            f"地区代码「{region_code}」无效：应为 6 位数字且前两位为省级代码",
            f"region code {region_code!r} is invalid: 6 digits with a province-level prefix",
            value=region_code,
        )
    if not 0 <= seq <= 499:
        raise IdentityError(
            "bad_sequence",
            f"顺序号 {seq} 超出范围 0–499",
            f"sequence {seq} is outside 0-499",
            value=seq,
        )
    if sex == "M":
        code = 2 * seq + 1
    elif sex == "F":
        code = 2 * seq
    else:
        code = 2 * seq + (1 if normalise_sex(sex) == "M" else 0)
    year = birth_date.year
    if year < 1000:
        raise IdentityError(
            "bad_birth_date", f"出生年份 {year} 无效", f"birth year {year} is invalid", value=year
        )
    first17 = region_code + _date8(birth_date) + _SEQ3[code]
    return first17 + _check_digit_unchecked(first17)


# --------------------------------------------------------------------------------------------
# Other documents
# --------------------------------------------------------------------------------------------

_PASSPORT = re.compile(r"[A-Z0-9]{5,17}")
_HK_MACAO = re.compile(r"[HM]\d{8}(?:\d{2})?")
_TAIWAN = re.compile(r"\d{8}|\d{10}(?:\([A-Z]\))?")
_FPR_OLD = re.compile(r"[A-Z]{3}\d{12}")
_OTHER_MAX = 32


def _cross_check(parsed: ResidentId, sex: object, birth_date: date | None, label_zh: str) -> None:
    if sex is not None and sex != "":
        given = normalise_sex(sex)
        if given != parsed.sex:
            raise IdentityError(
                "sex_mismatch",
                f"性别与{label_zh}号码不符：号码第 17 位表示{_SEX_ZH[parsed.sex]}，登记为{_SEX_ZH[given]}",
                f"sex does not match the number: digit 17 says {_SEX_EN[parsed.sex]}, "
                f"the record says {_SEX_EN[given]}",
                embedded=parsed.sex,
                given=given,
            )
    if birth_date is not None and birth_date != parsed.birth_date:
        raise IdentityError(
            "birth_date_mismatch",
            f"出生日期与{label_zh}号码不符：号码中为 {parsed.birth_date.isoformat()}，"
            f"登记为 {birth_date.isoformat()}",
            f"birth date does not match the number: the number says {parsed.birth_date.isoformat()}, "
            f"the record says {birth_date.isoformat()}",
            embedded=parsed.birth_date,
            given=birth_date,
        )


def _format_error(doc_type: DocumentType, number: str, rule_zh: str, rule_en: str) -> IdentityError:
    return IdentityError(
        "bad_format",
        f"{doc_type.label_zh}号码「{number}」格式不对：{rule_zh}",
        f"{doc_type.label_en} number {number!r} is malformed: {rule_en}",
        value=number,
        document_type=doc_type.value,
    )


def _first_bad_char(number: str, allowed: str) -> IdentityError | None:
    for position, char in enumerate(number, start=1):
        if char not in allowed:
            return IdentityError(
                "bad_character",
                f"第 {position} 位字符「{char}」无效",
                f"character {position} {char!r} is invalid",
                position=position,
                char=char,
            )
    return None


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def validate_document(
    doc_type: DocumentType | str,
    number: str,
    *,
    sex: str | None = None,
    birth_date: date | None = None,
    today: date | None = None,
) -> str:
    """Validate a document number by its type's own rule and return the normalised number.

    The normalised form (no spaces, upper-case) is what gets stored and compared, so the same
    document typed twice yields the same key. Where the number embeds sex and birth date
    (resident ID, HMT residence permit) the given ``sex`` / ``birth_date`` must agree with it:
    a mismatch means either field was mistyped, and guessing which one is not our job.
    """
    kind = parse_document_type(doc_type)
    cleaned = _clean_number(number)
    if not cleaned:
        raise IdentityError(
            "empty", f"{kind.label_zh}号码为空", f"{kind.label_en} number is empty", document_type=kind.value
        )

    if kind is DocumentType.RESIDENT_ID:
        parsed = _parse_gb11643(cleaned, today, label_zh="身份证", label_en="resident ID", legacy=True)
        _cross_check(parsed, sex, birth_date, "身份证")
        return parsed.number

    if kind is DocumentType.HMT_RESIDENCE_PERMIT:
        if len(cleaned) == 18 and cleaned[:6].isdigit() and cleaned[:6] not in HMT_REGION_CODES:
            raise IdentityError(
                "unknown_region",
                f"港澳台居民居住证号码应以 810000（香港）、820000（澳门）或 830000（台湾）开头，"
                f"实际为「{cleaned[:6]}」",
                f"HMT residence permit numbers start with 810000, 820000 or 830000, got {cleaned[:6]!r}",
                prefix=cleaned[:6],
            )
        parsed = _parse_gb11643(cleaned, today, label_zh="居住证", label_en="residence permit")
        _cross_check(parsed, sex, birth_date, "居住证")
        return parsed.number

    if kind is DocumentType.FOREIGN_PERMANENT_RESIDENCE:
        if cleaned[:1].isdigit():
            # 2023 card: 18 characters, first digit 9, MOD 11-2 like GB 11643.
            if len(cleaned) != 18:
                raise IdentityError(
                    "bad_length",
                    f"新版永居证号码应为 18 位，实际为 {len(cleaned)} 位",
                    f"2023 permanent residence numbers have 18 characters, got {len(cleaned)}",
                    expected=18,
                    actual=len(cleaned),
                )
            bad = _first_bad_char(cleaned[:17], "0123456789") or _first_bad_char(cleaned[17], "0123456789X")
            if bad is not None:
                raise bad
            if cleaned[0] != "9":
                raise _format_error(
                    kind, cleaned, "18 位新版号码以 9 开头", "18-character numbers start with 9"
                )
            expected = _check_digit_unchecked(cleaned[:17])
            if expected != cleaned[17]:
                raise IdentityError(
                    "bad_check_digit",
                    f"校验码错误：第 18 位应为 {expected}，实际为 {cleaned[17]}",
                    f"check character mismatch: expected {expected}, got {cleaned[17]}",
                    expected=expected,
                    actual=cleaned[17],
                )
            return cleaned
        if not _FPR_OLD.fullmatch(cleaned):
            raise _format_error(
                kind,
                cleaned,
                "旧版为 3 位字母（国籍）+ 12 位数字，共 15 位；新版为 18 位数字、以 9 开头",
                "old cards: 3 letters (nationality) + 12 digits; 2023 cards: 18 digits starting with 9",
            )
        return cleaned

    if kind is DocumentType.HK_MACAO_PERMIT:
        if not _HK_MACAO.fullmatch(cleaned):
            raise _format_error(
                kind,
                cleaned,
                "应为 H（香港）或 M（澳门）+ 8 位数字，可再跟 2 位换证次数",
                "H (Hong Kong) or M (Macao) + 8 digits, optionally + 2 digits counting re-issues",
            )
        return cleaned

    if kind is DocumentType.TAIWAN_PERMIT:
        if not _TAIWAN.fullmatch(cleaned):
            raise _format_error(
                kind,
                cleaned,
                "应为 8 位数字（2015 年起的卡式证件）或 10 位数字（旧版本式证件）",
                "8 digits (card issued since 2015) or 10 digits (older booklet)",
            )
        return cleaned

    if kind is DocumentType.PASSPORT:
        bad = _first_bad_char(cleaned, _ALNUM)
        if bad is not None:
            raise bad
        if not _PASSPORT.fullmatch(cleaned):
            raise IdentityError(
                "bad_length",
                f"护照号码应为 5–17 位字母或数字，实际为 {len(cleaned)} 位",
                f"passport numbers have 5-17 letters or digits, got {len(cleaned)}",
                actual=len(cleaned),
            )
        return cleaned

    # OTHER: free form, but bounded and printable so it can be a key.
    if len(cleaned) > _OTHER_MAX:
        raise IdentityError(
            "bad_length",
            f"证件号码过长：最多 {_OTHER_MAX} 位，实际为 {len(cleaned)} 位",
            f"document number too long: at most {_OTHER_MAX} characters, got {len(cleaned)}",
            actual=len(cleaned),
        )
    for position, char in enumerate(cleaned, start=1):
        if not char.isprintable():
            raise IdentityError(
                "bad_character",
                f"第 {position} 位含不可见字符",
                f"character {position} is not printable",
                position=position,
            )
    return cleaned


# --------------------------------------------------------------------------------------------
# Phone numbers
# --------------------------------------------------------------------------------------------

_PHONE_SEPARATORS = re.compile(r"[\s\-‐‑–—()（）.]+")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE_AREA = re.compile(r"0\d{2,3}")
_LANDLINE_LOCAL = re.compile(r"[2-9]\d{6,7}")


def _landline(area: str, local: str, original: str) -> str:
    if not _LANDLINE_AREA.fullmatch(area):
        raise IdentityError(
            "bad_phone",
            f"电话「{original}」的区号「{area}」无效：应为 0 开头的 3–4 位数字",
            f"area code {area!r} in {original!r} is invalid: 3-4 digits starting with 0",
            value=original,
        )
    if not _LANDLINE_LOCAL.fullmatch(local):
        raise IdentityError(
            "bad_phone",
            f"电话「{original}」的号码部分「{local}」无效：应为 7–8 位、不以 0 或 1 开头",
            f"local number {local!r} in {original!r} is invalid: 7-8 digits not starting with 0 or 1",
            value=original,
        )
    return f"{area}-{local}"


def normalise_phone(text: str) -> str:
    """A mainland mobile (11 digits) or landline (``0731-84567890``) in one stored form.

    Contact tracing calls these numbers and telecom data is matched against them, so
    ``+86 138-1234-5678`` and ``13812345678`` must be the same value.
    """
    original = "" if text is None else unicodedata.normalize("NFKC", str(text)).strip()
    if not original:
        raise IdentityError("empty_phone", "电话号码为空", "phone number is empty")
    # Keep the user's area-code split if they gave one ("0731-8456 7890"), before stripping.
    parts = [p for p in re.split(r"[\-‐‑–—()（）]+", original) if p.strip()]
    compact = _PHONE_SEPARATORS.sub("", original)
    international = False
    if compact.startswith("+"):
        if not compact.startswith("+86"):
            raise IdentityError(
                "bad_phone",
                f"「{original}」不是中国大陆号码（国家代码应为 +86）",
                f"{original!r} is not a mainland China number (country code must be +86)",
                value=original,
            )
        compact, international = compact[3:], True
    elif compact.startswith("0086"):
        compact, international = compact[4:], True
    elif compact.startswith("86") and len(compact) == 13 and _MOBILE.fullmatch(compact[2:]):
        compact, international = compact[2:], True
    for position, char in enumerate(compact, start=1):
        if char not in _DIGITS:
            raise IdentityError(
                "bad_phone",
                f"电话「{original}」含非法字符「{char}」",
                f"phone {original!r} contains an invalid character {char!r}",
                value=original,
                position=position,
            )
    # After +86 a Beijing landline (10 xxxxxxxx) also starts with 1; mobiles never start with 10.
    if compact.startswith("1") and not (international and compact.startswith("10")):
        if _MOBILE.fullmatch(compact):
            return compact
        if len(compact) != 11:
            raise IdentityError(
                "bad_phone",
                f"手机号应为 11 位，实际为 {len(compact)} 位",
                f"mobile numbers have 11 digits, got {len(compact)}",
                value=original,
                actual=len(compact),
            )
        raise IdentityError(
            "bad_phone",
            f"手机号「{compact}」无效：应以 13–19 开头",
            f"mobile number {compact!r} is invalid: it must start with 13-19",
            value=original,
        )
    if international and not compact.startswith("0"):
        compact = "0" + compact  # the trunk 0 is dropped after +86
    if not compact.startswith("0"):
        raise IdentityError(
            "bad_phone",
            f"电话「{original}」无效：手机号以 1 开头，固定电话须带 0 开头的区号",
            f"{original!r} is invalid: mobiles start with 1, landlines need an area code starting with 0",
            value=original,
        )
    if not international and len(parts) >= 2:
        area = _PHONE_SEPARATORS.sub("", parts[0])
        local = _PHONE_SEPARATORS.sub("", "".join(parts[1:]))
        if area.startswith("0") and area + local == compact:
            return _landline(area, local, original)
    # No separator: 010 and 02x are the only 3-digit area codes, every other one has 4 digits.
    width = 3 if compact.startswith(("010", "02")) else 4
    return _landline(compact[:width], compact[width:], original)


# --------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return 0x3400 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x3FFFF


def _as_text(value: object) -> str:
    if value is None:
        return ""
    try:
        return str(value).strip()
    except Exception:  # a broken __str__ must not break a list page
        return ""


def mask_name(name: str | None) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧***, John Smith → J*** S****.

    Lists show masked names by default (DESIGN §5); the surname initial is kept so that staff can
    still tell people apart on the phone. Never raises: it runs on every row of every list.
    """
    text = _as_text(name)
    if not text:
        return ""
    if any(_is_cjk(c) for c in text):
        head, rest = text[0], text[1:]
        masked = "".join(c if c in "·• " else "*" for c in rest)
        return head + (masked or "*")
    words = text.split()
    return " ".join(word[0] + "*" * (len(word) - 1) for word in words)


_RESIDENT_SHAPE = re.compile(r"\d{17}[\dX]")


def mask_document(number: str | None, doc_type: DocumentType | str | None = None) -> str:
    """430102199001011234 → 430***********1234; other documents keep 1-2 leading, 2-3 trailing.

    An 18-character GB 11643-shaped number keeps the province/city prefix and the last four, the
    form people recognise from bank and rail tickets. Never raises.
    """
    text = _clean_number(_as_text(number))
    if not text:
        return ""
    kind: DocumentType | None = None
    if doc_type is not None:
        try:
            kind = parse_document_type(doc_type)
        except (IdentityError, TypeError):
            kind = None
    n = len(text)
    gb_shaped = n == 18 and _RESIDENT_SHAPE.fullmatch(text) is not None
    if gb_shaped and kind in (
        None,
        DocumentType.RESIDENT_ID,
        DocumentType.HMT_RESIDENCE_PERMIT,
        DocumentType.FOREIGN_PERMANENT_RESIDENCE,
        DocumentType.OTHER,
    ):
        return text[:3] + "*" * (n - 7) + text[-4:]
    if n >= 9:
        return text[:2] + "*" * (n - 5) + text[-3:]
    if n >= 6:
        return text[:1] + "*" * (n - 3) + text[-2:]
    if n >= 2:
        return text[:1] + "*" * (n - 1)
    return "*"


def mask_phone(phone: str | None) -> str:
    """13812345678 → 138****5678; 0731-84567890 → 0731-****7890. Never raises."""
    text = _as_text(phone)
    if not text:
        return ""
    try:
        normal = normalise_phone(text)
    except IdentityError:
        normal = _PHONE_SEPARATORS.sub("", text)
    if "-" in normal:
        area, local = normal.split("-", 1)
        keep = min(4, max(len(local) - 3, 0))
        return f"{area}-{'*' * (len(local) - keep)}{local[-keep:] if keep else ''}"
    n = len(normal)
    if n >= 11:
        return normal[:3] + "*" * (n - 7) + normal[-4:]
    keep = 4 if n >= 8 else 2 if n >= 4 else 0
    return "*" * (n - keep) + normal[n - keep :]


_ADDRESS_LEVELS = "省市州盟区县旗"
_ADDRESS_KEEP = 6


def mask_address(address: str | None) -> str:
    """湖南省长沙市芙蓉区五一大道 1 号 → 湖南省长沙市****.

    Keeps at most the first six characters, cut after the last province/city/county suffix that
    falls inside them, so the list still shows roughly where a person lives without the street
    and door number. Non-Chinese addresses keep only their last comma-separated part (city or
    country). Never raises.
    """
    text = _as_text(address)
    if not text:
        return ""
    if not any(_is_cjk(c) for c in text):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return "****, " + parts[-1] if len(parts) > 1 else "****"
    head = text[:_ADDRESS_KEEP]
    cut = max(head.rfind(c) for c in _ADDRESS_LEVELS)
    if cut >= 0:
        kept = head[: cut + 1]
    else:
        # No administrative prefix: the text starts with the street, so keep less of it.
        kept = head[: len(text) // 3]
    return kept.strip() + "****"
