#!/usr/bin/env python3
"""Generate a synthetic CT corpus for benchmarking `umbra deid`.

Each file is a CT Image Storage instance, Explicit VR Little Endian, 512x512,
Bits Allocated 16 / Bits Stored 12, with the kind of identifying header a
hospital PACS export carries (names, MRN, dates, institution, device, UIDs
under an organisation root, a GE-style private block, a Referenced Image
Sequence pointing at the previous slice).  Files are laid out like a typical
export folder, with deliberately identifying folder names:

    OUT/<FAMILY_GIVEN_M>_<MRN>/<StudyDate>_<StudyDescription>_<Accession>/
        <SeriesNumber>_<SeriesDescription>/IM<n>.dcm

Everything (headers, UIDs, pixel bytes) is derived from --seed, so the same
arguments give byte-identical files.  Only pydicom is needed (no numpy).

Size: one slice is 512*512*2 = 512 KiB of pixels plus ~2 KiB of header, so
patients * studies * slices slices make about that many half-megabytes.
"""

import argparse
import datetime as dt
import os
import random
import sys

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, CTImageStorage
except ImportError:  # pragma: no cover
    sys.exit("pydicom is required: pip install pydicom")

ORG_ROOT = "1.2.826.0.1.3680043.9.7433"  # made-up organisation root
IMPL_CLASS_UID = ORG_ROOT + ".0.1"
ROWS = COLS = 512

FAMILY = ["DOE", "SMITH", "JOHNSON", "NGUYEN", "GARCIA", "MUELLER", "ROSSI",
          "OKAFOR", "TANAKA", "KOWALSKI", "O'BRIEN", "DUBOIS", "HANSEN",
          "PATEL", "SILVA", "MARTIN", "LEE", "IVANOV", "BROWN", "WILSON"]
GIVEN_F = ["JANE", "MARY", "ANNA", "FATIMA", "YUKI", "MARIE", "SOFIA", "EMMA"]
GIVEN_M = ["JOHN", "PETER", "AHMED", "HIROSHI", "LUCA", "JAN", "OLUWASEUN", "ERIK"]
STREETS = ["Elm St", "High Street", "Rue de la Paix", "Hauptstrasse",
           "Via Roma", "Maple Ave", "Church Lane"]
CITIES = ["Springfield", "Manchester", "Lyon", "Hamburg", "Bologna", "Leeds"]
INSTITUTIONS = [("St. Mary's General Hospital", "12 Hospital Road^^Springfield^^12345"),
                ("University Medical Centre", "1 Campus Drive^^Manchester^^M13 9PL")]
PHYSICIANS = ["HOUSE^GREGORY^^DR", "GREY^MEREDITH^^DR", "WHO^JOHN^^DR",
              "STRANGE^STEPHEN^VINCENT^DR"]
OPERATORS = ["TECH^ALEX", "RADIOGRAPHER^SAM", "CHEN^LI"]
STUDIES = [("CT CHEST W CONTRAST", "CHEST_PE_PROTOCOL"),
           ("CT ABDOMEN PELVIS W/O", "ABD_PELVIS_ROUTINE"),
           ("CT HEAD WO CONTRAST", "HEAD_ROUTINE_ADULT"),
           ("CT CAP STAGING", "CAP_ONCO_V3")]
SERIES = [("AXIAL 1.25mm STND", 1.25), ("AXIAL 2.5mm SOFT", 2.5),
          ("AXIAL 0.625mm LUNG", 0.625)]


def uid(rng, *parts):
    """A UID under the organisation root, unique per call, deterministic per rng."""
    tail = ".".join(str(p) for p in parts)
    return f"{ORG_ROOT}.{tail}.{rng.randrange(10**9, 10**10)}"[:64]


def safe(s):
    return "".join(c if c.isalnum() else "_" for c in s).strip("_")


def pixel_bytes(rng):
    """512*512 little-endian uint16 values in 0..4095 (12 bits stored)."""
    b = bytearray(rng.randbytes(ROWS * COLS * 2))
    # high byte of each LE sample keeps only its low nibble -> 12-bit values
    b[1::2] = b[1::2].translate(MASK_HIGH)
    return bytes(b)


MASK_HIGH = bytes(i & 0x0F for i in range(256))


def make_slice(p, st, se, k, n_slices, prev_sop, rng):
    sop_uid = uid(rng, p["idx"], st["idx"], se["number"], k + 1)
    t = st["when"] + dt.timedelta(seconds=40 + se["number"] * 90 + k * 0.3)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPL_CLASS_UID
    meta.ImplementationVersionName = "UMBRA_BENCH_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = t.strftime("%Y%m%d")
    ds.InstanceCreationTime = t.strftime("%H%M%S")
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = st["when"].strftime("%Y%m%d")
    ds.SeriesDate = st["when"].strftime("%Y%m%d")
    ds.AcquisitionDate = t.strftime("%Y%m%d")
    ds.ContentDate = t.strftime("%Y%m%d")
    ds.AcquisitionDateTime = t.strftime("%Y%m%d%H%M%S.%f")
    ds.StudyTime = st["when"].strftime("%H%M%S")
    ds.SeriesTime = (st["when"] + dt.timedelta(seconds=se["number"] * 90)).strftime("%H%M%S")
    ds.AcquisitionTime = t.strftime("%H%M%S.%f")
    ds.ContentTime = t.strftime("%H%M%S.%f")
    ds.AccessionNumber = st["accession"]
    ds.Modality = "CT"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.InstitutionName = st["institution"][0]
    ds.InstitutionAddress = st["institution"][1]
    ds.ReferringPhysicianName = st["referrer"]
    ds.StationName = st["station"]
    ds.StudyDescription = st["description"]
    ds.SeriesDescription = se["description"]
    ds.InstitutionalDepartmentName = "RADIOLOGY"
    ds.OperatorsName = st["operator"]
    ds.ManufacturerModelName = "Revolution CT"
    ds.BurnedInAnnotation = "NO"

    if prev_sop:  # the previous slice of the series
        ref = Dataset()
        ref.ReferencedSOPClassUID = CTImageStorage
        ref.ReferencedSOPInstanceUID = prev_sop
        ds.ReferencedImageSequence = Sequence([ref])

    ds.PatientName = p["name"]
    ds.PatientID = p["mrn"]
    ds.IssuerOfPatientID = "SMGH-MRN"
    ds.PatientBirthDate = p["birth"].strftime("%Y%m%d")
    ds.PatientSex = p["sex"]
    ds.PatientAge = "%03dY" % p["age"]
    ds.PatientSize = "%.2f" % p["height"]
    ds.PatientWeight = "%.1f" % p["weight"]
    ds.PatientAddress = p["address"]
    ds.PatientTelephoneNumbers = p["phone"]

    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = "%g" % se["thickness"]
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500.0"
    ds.DeviceSerialNumber = st["serial"]
    ds.SoftwareVersions = "revo_ct_22mw.40"
    ds.ProtocolName = st["protocol"]
    ds.ReconstructionDiameter = "380.0"
    ds.DistanceSourceToDetector = "1085.6"
    ds.DistanceSourceToPatient = "625.6"
    ds.GantryDetectorTilt = "0.0"
    ds.TableHeight = "165.5"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = str(200 + rng.randrange(200))
    ds.Exposure = "10"
    ds.FilterType = "BODY FILTER"
    ds.GeneratorPower = "48000"
    ds.FocalSpots = "1.2"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "FFS"
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.625
    ds.TotalCollimationWidth = 80.0
    ds.TableSpeed = 158.75
    ds.TableFeedPerRotation = 79.375
    ds.SpiralPitchFactor = 0.992

    # GE-style private block
    blk = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    blk.add_new(0x02, "SL", 3620)                # detector channel count
    blk.add_new(0x23, "DS", "158.75")             # table speed (mm/rot)
    blk.add_new(0x4E, "DS", "0.500000")           # rotation speed
    blk.add_new(0x9E, "LO", "TUBE_SN_%06d" % rng.randrange(10**6))

    ds.StudyInstanceUID = st["uid"]
    ds.SeriesInstanceUID = se["uid"]
    ds.StudyID = st["study_id"]
    ds.SeriesNumber = se["number"]
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = k + 1
    z = -k * se["thickness"]
    ds.ImagePositionPatient = ["-190.000", "-190.000", "%.3f" % z]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = st["for_uid"]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = "%.3f" % z

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLS
    ds.PixelSpacing = ["0.742188", "0.742188"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelPaddingValue = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelData = pixel_bytes(rng)
    ds["PixelData"].VR = "OW"
    return ds, sop_uid


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--patients", type=int, default=5)
    ap.add_argument("--studies-per-patient", type=int, default=2)
    ap.add_argument("--slices", type=int, default=100, help="slices per series (one series per study)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    # fail on any value that does not fit its VR instead of warning
    pydicom.config.settings.writing_validation_mode = pydicom.config.RAISE
    pydicom.config.settings.reading_validation_mode = pydicom.config.RAISE

    rng = random.Random(a.seed)
    base = dt.datetime(2023, 1, 9, 8, 0, 0)
    n = 0
    for pi in range(a.patients):
        sex = rng.choice("FM")
        given = rng.choice(GIVEN_F if sex == "F" else GIVEN_M)
        family = rng.choice(FAMILY)
        middle = chr(ord("A") + rng.randrange(26))
        birth = dt.date(1935, 1, 1) + dt.timedelta(days=rng.randrange(365 * 70))
        p = {
            "idx": pi + 1,
            "name": f"{family}^{given}^{middle}",
            "mrn": "%08d" % rng.randrange(10**7, 10**8),
            "sex": sex,
            "birth": birth,
            "height": rng.uniform(1.5, 1.95),
            "weight": rng.uniform(45, 120),
            "address": f"{rng.randrange(1, 300)} {rng.choice(STREETS)}^^{rng.choice(CITIES)}",
            "phone": "+44 161 %03d %04d" % (rng.randrange(1000), rng.randrange(10000)),
        }
        pdir = os.path.join(a.out, f"{family}_{given}_{middle}_{p['mrn']}".replace("'", ""))
        for si in range(a.studies_per_patient):
            when = base + dt.timedelta(days=rng.randrange(700), minutes=rng.randrange(600))
            p["age"] = (when.date() - birth).days // 365
            desc, proto = rng.choice(STUDIES)
            st = {
                "idx": si + 1,
                "when": when,
                "accession": "ACC%07d" % rng.randrange(10**7),
                "study_id": str(rng.randrange(1000, 99999)),
                "institution": rng.choice(INSTITUTIONS),
                "referrer": rng.choice(PHYSICIANS),
                "operator": rng.choice(OPERATORS),
                "station": "CTAWP%05d" % rng.randrange(10**5),
                "serial": "%d%s" % (rng.randrange(10**5, 10**6), "CN5"),
                "description": desc,
                "protocol": proto,
                "uid": uid(rng, 1, pi + 1, si + 1),
                "for_uid": uid(rng, 4, pi + 1, si + 1),
            }
            sdesc, thick = rng.choice(SERIES)
            se = {"number": 2 + si, "description": sdesc, "thickness": thick,
                  "uid": uid(rng, 2, pi + 1, si + 1)}
            sedir = os.path.join(pdir, f"{when:%Y%m%d}_{safe(desc)}_{st['accession']}",
                                 f"{se['number']}_{safe(sdesc)}")
            os.makedirs(sedir, exist_ok=True)
            prev = None
            for k in range(a.slices):
                ds, prev = make_slice(p, st, se, k, a.slices, prev, rng)
                ds.save_as(os.path.join(sedir, f"IM{k + 1}.dcm"), enforce_file_format=True)
                n += 1
    print(f"wrote {n} files under {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
