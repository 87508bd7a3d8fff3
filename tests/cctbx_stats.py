"""Merging statistics by cctbx (iotbx.merging_statistics) of an unmerged MTZ, printed as JSON.

Run with a Python that has cctbx (Debian's python3-dials: /usr/bin/python3); the scaling tests call it
through subprocess and skip when it is not there:

    /usr/bin/python3 tests/cctbx_stats.py FILE.mtz [INTENSITY_LABEL]
"""
import json
import sys


def main(path, label=None):
    import iotbx.merging_statistics as ms
    from iotbx.reflection_file_reader import any_reflection_file

    arrays = any_reflection_file(path).as_miller_arrays(merge_equivalents=False)
    arr = next(a for a in arrays if a.is_xray_intensity_array()
               and (label is None or a.info().label_string().split(",")[0] == label))
    s = ms.dataset_statistics(i_obs=arr, n_bins=10)

    def d(b):
        return {"d_max": b.d_max, "d_min": b.d_min, "n_obs": b.n_obs, "n_unique": b.n_uniq,
                "multiplicity": b.mean_redundancy, "completeness": 100 * b.completeness,
                "i_over_sigma": b.i_over_sigma_mean, "cc_half": b.cc_one_half, "r_meas": b.r_meas,
                "r_pim": b.r_pim, "cc_anom": b.cc_anom}

    out = {"label": arr.info().label_string(), "space_group": str(arr.space_group_info()),
           "unit_cell": list(arr.unit_cell().parameters()), "n_batches": None,
           "overall": d(s.overall), "shells": [d(b) for b in s.bins]}
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:3])
