#!/usr/bin/env node
// Patches ipfs-http-server (js-ipfs 0.66.1) so that its RPC answers match
// Kubo's wire format where fhir-bulk (ipfs-api-backend-hyper) depends on it:
//
//   (a) /api/v0/add answers "Size" as a JSON string, as Kubo does
//       (js-ipfs sends a number; the Rust client then fails with
//       "invalid type: integer ..., expected a string").
//   (b) CIDs are printed like Kubo when no cid-base is requested: CIDv0 in
//       base58btc, CIDv1 in base32 (js-ipfs prints CIDv1 in base58btc).
//       With an explicit cid-base, that base is used, and a CIDv0 that cannot
//       be written in it is upgraded to CIDv1, as Kubo does.
//       Applied to /api/v0/add and /api/v0/pin/{add,rm,ls}.
//
// Runs as the package's postinstall step and again from ipfs-node.sh start.
// Idempotent: an already patched file is checked and left alone.
// Fails loudly (exit 1) if the code it expects to patch is not found, e.g.
// after a change of the ipfs-http-server version in package-lock.json.
'use strict'

const fs = require('fs')
const path = require('path')

const MARKER = 'fhir-bulk-kubo-compat'
const EXPECTED_VERSION = '0.15.1'

const HELPER = `
/* ${MARKER}: print CIDs as Kubo does (see tools/ipfs-node/patch.js) */
function kuboCidString (cid, base) {
  if (base === undefined) {
    // no cid-base given: CIDv0 in base58btc, CIDv1 in base32
    return cid.toString()
  }
  if (cid.version === 0 && base.encoder.prefix !== 'z') {
    cid = cid.toV1()
  }
  return cid.toString(base.encoder)
}
`

const GET_BASE_OLD = 'const base = await ipfs.bases.getBase(cidBase)'
const GET_BASE_NEW = `const base = cidBase === undefined ? undefined : await ipfs.bases.getBase(cidBase) /* ${MARKER} */`
const DEFAULT_OLD = "cidBase: Joi.string().default('base58btc'),"
const DEFAULT_NEW = `cidBase: Joi.string(), /* ${MARKER} */`

// Each edit: [old, new, expected number of occurrences].
// `within` restricts the edits to the text between two anchors.
const FILES = [
  {
    file: 'src/api/resources/files-regular.js',
    within: ['export const addResource = {', 'export const lsResource = {'],
    afterImports: "import { PassThrough } from 'stream'\n",
    edits: [
      [DEFAULT_OLD, DEFAULT_NEW, 1],
      [GET_BASE_OLD, GET_BASE_NEW, 1],
      ['Hash: file.cid.toString(base.encoder),', 'Hash: kuboCidString(file.cid, base),', 1],
      ['Size: file.size,', `Size: String(file.size), /* ${MARKER}: Kubo sends a string */`, 1]
    ]
  },
  {
    file: 'src/api/resources/pin.js',
    within: null,
    afterImports: "import reduce from 'it-reduce'\n",
    edits: [
      [DEFAULT_OLD, DEFAULT_NEW, 3],
      [GET_BASE_OLD, GET_BASE_NEW, 3],
      ['res.Keys[cid.toString(base.encoder)]', 'res.Keys[kuboCidString(cid, base)]', 1],
      ['toPin(type, cid.toString(base.encoder), metadata)', 'toPin(type, kuboCidString(cid, base), metadata)', 1],
      ['Pins: result.map(cid => cid.toString(base.encoder))', 'Pins: result.map(cid => kuboCidString(cid, base))', 2]
    ]
  }
]

function fail (msg) {
  process.stderr.write(`\nipfs-node patch.js: FAILED: ${msg}\n` +
    'The Kubo wire-format patch of ipfs-http-server cannot be applied; the test IPFS node\n' +
    'would not behave like Kubo. Check the ipfs/ipfs-http-server versions in package-lock.json.\n\n')
  process.exit(1)
}

function count (haystack, needle) {
  let n = 0
  let i = haystack.indexOf(needle)
  while (i !== -1) {
    n++
    i = haystack.indexOf(needle, i + needle.length)
  }
  return n
}

function locatePackage () {
  const dir = path.join(__dirname, 'node_modules', 'ipfs-http-server')
  const pkgFile = path.join(dir, 'package.json')
  if (!fs.existsSync(pkgFile)) {
    fail(`${pkgFile} not found (run npm ci in ${__dirname} first)`)
  }
  const version = JSON.parse(fs.readFileSync(pkgFile, 'utf8')).version
  return { dir, version }
}

function patchFile (pkgDir, version, spec) {
  const file = path.join(pkgDir, spec.file)
  if (!fs.existsSync(file)) {
    fail(`${file} not found (ipfs-http-server ${version}, expected ${EXPECTED_VERSION})`)
  }
  const original = fs.readFileSync(file, 'utf8')

  let start = 0
  let end = original.length
  if (spec.within) {
    start = original.indexOf(spec.within[0])
    end = original.indexOf(spec.within[1], start)
    if (start === -1 || end === -1) {
      fail(`${spec.file}: anchors ${JSON.stringify(spec.within)} not found ` +
        `(ipfs-http-server ${version}, expected ${EXPECTED_VERSION})`)
    }
  }
  const head = original.slice(0, start)
  let body = original.slice(start, end)
  const tail = original.slice(end)

  if (original.includes(MARKER)) {
    // Already patched: verify that every edit is in place.
    for (const [oldText, newText, n] of spec.edits) {
      if (count(body, newText) !== n || body.includes(oldText)) {
        fail(`${spec.file} carries the ${MARKER} marker but is not patched as expected ` +
          `(looking for ${n}x ${JSON.stringify(newText)}); reinstall with npm ci`)
      }
    }
    if (count(original, 'function kuboCidString') !== 1) {
      fail(`${spec.file} carries the ${MARKER} marker but lacks kuboCidString; reinstall with npm ci`)
    }
    return false
  }

  for (const [oldText, newText, n] of spec.edits) {
    const found = count(body, oldText)
    if (found !== n) {
      fail(`${spec.file}: expected ${n} occurrence(s) of ${JSON.stringify(oldText)}, found ${found} ` +
        `(ipfs-http-server ${version}, expected ${EXPECTED_VERSION})`)
    }
    body = body.split(oldText).join(newText)
  }

  let patched = head + body + tail
  if (count(patched, spec.afterImports) !== 1) {
    fail(`${spec.file}: import line ${JSON.stringify(spec.afterImports.trim())} not found ` +
      `(ipfs-http-server ${version}, expected ${EXPECTED_VERSION})`)
  }
  patched = patched.replace(spec.afterImports, spec.afterImports + HELPER)

  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, patched)
  fs.renameSync(tmp, file)
  return true
}

function main () {
  const { dir, version } = locatePackage()
  const results = FILES.map(spec => [spec.file, patchFile(dir, version, spec)])
  for (const [file, changed] of results) {
    console.log(`ipfs-node patch.js: ipfs-http-server ${version} ${file}: ${changed ? 'patched' : 'already patched'}`)
  }
}

main()
