/** Inventory files: describe-instances output and address lists; entries that cannot be read are left out with the reason. */
import { describe, expect, it } from 'vitest';
import { parseInventoryText } from '../../../../detector/inventory/parse.js';

const DESCRIBE = {
  Reservations: [
    {
      ReservationId: 'r-0123456789abcdef0',
      Instances: [
        {
          InstanceId: 'i-0a1b2c3d4e5f67890',
          LaunchTime: '2024-05-01T08:00:00+00:00',
          PrivateIpAddress: '10.20.1.10',
          State: { Name: 'running' },
          NetworkInterfaces: [
            {
              PrivateIpAddress: '10.20.1.10',
              PrivateIpAddresses: [
                { PrivateIpAddress: '10.20.1.10', Primary: true },
                { PrivateIpAddress: '10.20.1.11', Primary: false },
              ],
              Ipv6Addresses: [{ Ipv6Address: 'fd12:0000::10' }],
            },
            { PrivateIpAddresses: [{ PrivateIpAddress: '10.20.2.10' }], Ipv6Addresses: [] },
          ],
        },
        { InstanceId: 'i-0ffffffffffffffff', State: { Name: 'terminated' }, NetworkInterfaces: [] },
      ],
    },
    { Instances: [{ InstanceId: 'not-an-instance', PrivateIpAddress: '10.0.0.1' }] },
  ],
};

describe('parseInventoryText', () => {
  it('reads every private address of describe-instances output, dated by LaunchTime', () => {
    expect(parseInventoryText(JSON.stringify(DESCRIBE))).toEqual({
      instances: [
        {
          instanceId: 'i-0a1b2c3d4e5f67890',
          addresses: ['10.20.1.10', '10.20.1.11', 'fd12::10', '10.20.2.10'],
          sinceMs: Date.parse('2024-05-01T08:00:00Z'),
          untilMs: null,
        },
      ],
      rejected: ['Reservations[1].Instances[0]: InstanceId "not-an-instance" is not an instance id'],
    });
  });

  it('reads a list of instances, optionally dated', () => {
    const text = JSON.stringify([
      { instanceId: 'i-0a1b2c3d4e5f67890', privateIps: ['10.20.1.10', 'fd12::10'] },
      { instanceId: 'i-0def4567890abcdef', privateIps: ['10.20.7.7'], firstSeen: '2024-05-01T08:00:00Z', lastSeen: '2024-05-01T09:00:00Z' },
      { instanceId: 'i-0def4567890abcdef', privateIps: ['10.20.7.300'] },
      { instanceId: 'i-0def4567890abcdef', privateIps: [] },
      { instanceId: 'i-0def4567890abcdef', privateIps: ['10.0.0.1'], firstSeen: 'yesterday' },
      { instanceId: 'i-0def4567890abcdef', privateIps: ['10.0.0.1'], firstSeen: '2024-05-01T09:00:00Z', lastSeen: '2024-05-01T08:00:00Z' },
      'i-0def4567890abcdef',
    ]);
    expect(parseInventoryText(text)).toEqual({
      instances: [
        { instanceId: 'i-0a1b2c3d4e5f67890', addresses: ['10.20.1.10', 'fd12::10'], sinceMs: null, untilMs: null },
        {
          instanceId: 'i-0def4567890abcdef',
          addresses: ['10.20.7.7'],
          sinceMs: Date.parse('2024-05-01T08:00:00Z'),
          untilMs: Date.parse('2024-05-01T09:00:00Z'),
        },
      ],
      rejected: [
        '[2]: i-0def4567890abcdef: "10.20.7.300" is not an IP address',
        '[3]: i-0def4567890abcdef: privateIps must be a non-empty list of addresses',
        '[4]: i-0def4567890abcdef: firstSeen "yesterday" is not an ISO 8601 time',
        '[5]: i-0def4567890abcdef: lastSeen is before firstSeen',
        '[6]: expected {"instanceId": "i-…", "privateIps": [addresses]}',
      ],
    });
  });

  it('says what it expected of a file that is neither', () => {
    expect(parseInventoryText('{"Instances": []}')).toEqual({
      error:
        'expected the output of `aws ec2 describe-instances --output json` (an object with Reservations) or a list of {"instanceId", "privateIps"}',
    });
    expect(parseInventoryText('{')).toMatchObject({ error: expect.stringMatching(/^not JSON: /) });
  });
});
