"""python -m experiments.course: claims.json, the table, exit codes."""
import json

import pytest

from experiments.course import __main__ as course


def test_runs_the_selected_experiments(tmp_path, capsys):
  out = tmp_path / 'course'
  assert course.main(['course', f'--out={out}', '--quick', '--only=backprop,robbins_monro']) == 0
  claims = json.load(open(out / 'claims.json'))
  assert list(claims) == ['backprop', 'robbins_monro']
  for experiment in claims.values():
    for c in experiment.values():
      assert set(c) == {'measured', 'expected', 'holds'} and c['holds'] is True
  text = capsys.readouterr().out
  assert 'experiment' in text and 'PASS' in text and 'FAIL' not in text
  assert '10/10 claims hold' in text
  assert (out / 'backprop.png').exists() and (out / 'robbins_monro.png').exists()


def test_a_failing_claim_fails_the_run():
  from experiments.course import claim  # pylint: disable=g-import-not-at-top
  results = {'a': {'holds': claim.less(0.5, 1.0)}, 'b': {'fails': claim.greater(0.5, 1.0)}}
  assert course.exit_status(results) == 1
  assert course.exit_status({'a': results['a']}) == 0
  lines = course.table(results).splitlines()
  assert lines[2].endswith('PASS') and lines[3].endswith('FAIL') and 'b  ' in lines[3]
  assert claim.greater(0.5, 1.0).to_json() == {'measured': 0.5, 'expected': '> 1',
                                               'holds': False}


@pytest.mark.parametrize('flag', ['--only=nope', '--nonsense=1'])
def test_bad_command_line_exits_2_and_writes_nothing(tmp_path, capsys, flag):
  out = tmp_path / 'never'
  with pytest.raises(SystemExit) as e:
    course.main(['course', f'--out={out}', flag])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: ')
  assert not out.exists()
