// CIDR lists for the admin allowlist and trusted proxies.
import t from 'tap';
import { createIpMatcher, limitKeyOfIp, parseCidr } from '../../src/lib/cidr.ts';

t.test('parseCidr reads IPv4 and IPv6 CIDRs and single addresses', async (t) => {
  t.same(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  t.same(parseCidr(' 192.168.1.7 '), { address: '192.168.1.7', prefix: 32, family: 'ipv4' });
  t.same(parseCidr('0.0.0.0/0'), { address: '0.0.0.0', prefix: 0, family: 'ipv4' });
  t.same(parseCidr('2001:db8::/32'), { address: '2001:db8::', prefix: 32, family: 'ipv6' });
  t.same(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
});

t.test('parseCidr refuses invalid input', async (t) => {
  for (const bad of [
    '300.1.1.1',
    '300.1.1.1/8',
    'example.com',
    '',
    '10.0.0.0/33',
    '2001:db8::/129',
    '10.0.0.0/x',
    '10.0.0.0/',
    '10.0.0.0/-1',
    '10.0.0.0/8.5',
    '10.0.0.0/ 8',
    '1.2.3.4/8/9',
  ]) {
    t.throws(() => parseCidr(bad), { message: `"${bad}"` }, `${bad} names the bad entry`);
  }
});

t.test('an IPv4 allowlist', async (t) => {
  const allowed = createIpMatcher(['10.0.0.0/8', '192.168.1.7']);
  t.ok(allowed('10.0.0.1'));
  t.ok(allowed('10.255.255.255'));
  t.ok(allowed('192.168.1.7'), 'a single address');
  t.notOk(allowed('11.0.0.1'));
  t.notOk(allowed('192.168.1.8'), 'the neighbour of a single address');
  t.notOk(allowed('9.255.255.255'));
  t.notOk(allowed('::1'), 'an IPv6 address');
  t.notOk(allowed('not-an-ip'), 'garbage never matches');
  t.notOk(allowed(''), 'nor does an empty string');
});

t.test('an IPv6 allowlist', async (t) => {
  const allowed = createIpMatcher(['2001:db8::/32', '::1']);
  t.ok(allowed('2001:db8::1'));
  t.ok(allowed('2001:db8:ffff:ffff::42'));
  t.ok(allowed('::1'));
  t.notOk(allowed('2001:db9::1'));
  t.notOk(allowed('::2'));
  t.notOk(allowed('127.0.0.1'), 'IPv4 loopback is not ::1');
});

t.test('IPv4-mapped IPv6 addresses match their IPv4 form', async (t) => {
  const allowed = createIpMatcher(['10.0.0.0/8', '127.0.0.1']);
  t.ok(allowed('::ffff:10.1.2.3'));
  t.ok(allowed('::FFFF:10.1.2.3'), 'case-insensitive');
  t.ok(allowed('::ffff:127.0.0.1'));
  t.notOk(allowed('::ffff:11.1.2.3'));
  t.notOk(allowed('::ffff:127.0.0.2'));
});

t.test('an empty list matches nothing; a bad entry fails at build time', async (t) => {
  t.notOk(createIpMatcher([])('10.0.0.1'));
  t.throws(() => createIpMatcher(['10.0.0.0/8', '10.0.0.0/33']), /invalid prefix/);
});

t.test('limitKeyOfIp: IPv4 as it is, IPv4-mapped as IPv4, IPv6 by its /64', async (t) => {
  t.equal(limitKeyOfIp('192.0.2.7'), '192.0.2.7');
  t.equal(limitKeyOfIp('::ffff:192.0.2.7'), '192.0.2.7');
  t.equal(limitKeyOfIp('2001:db8:1:2::1'), limitKeyOfIp('2001:db8:1:2:ffff:ffff:ffff:ffff'));
  t.equal(limitKeyOfIp('2001:0db8:0001:0002:0000:0000:0000:0001'), '2001:db8:1:2::', 'any spelling, one key');
  t.not(limitKeyOfIp('2001:db8:1:2::1'), limitKeyOfIp('2001:db8:1:3::1'), 'the next /64 is another key');
});
